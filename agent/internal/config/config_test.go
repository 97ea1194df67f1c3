package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var key32 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func valid() Config {
	c := Default()
	c.ServerID = "ws-local-1"
	c.TLSCert, c.TLSKey, c.TLSCA = "/c", "/k", "/ca"
	c.GossipKey = []byte("0123456789abcdef0123456789abcdef")
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"missing server id", func(c *Config) { c.ServerID = "" }, "server id"},
		{"upper-case server id", func(c *Config) { c.ServerID = "WS-1" }, "server id"},
		{"bad listen", func(c *Config) { c.Listen = "7443" }, "listen address"},
		{"no tls", func(c *Config) { c.TLSCert = "" }, "tls cert: required"},
		{"short gossip key", func(c *Config) { c.GossipKey = []byte("short") }, "gossip key"},
		{"tcp docker host", func(c *Config) { c.DockerHost = "tcp://127.0.0.1:2375" }, "only a unix:// socket"},
		{"relative data dir", func(c *Config) { c.DataDir = "data" }, "absolute"},
		{"tiny sample interval", func(c *Config) { c.SampleInterval = time.Millisecond }, "sample interval"},
		{"negative gpus", func(c *Config) { c.GPUCount = -1 }, "gpu count"},
		{"no proxy connections", func(c *Config) { c.ProxyMaxConns = 0 }, "proxy max conns"},
		{"tiny proxy header timeout", func(c *Config) { c.ProxyHeaderTimeout = time.Millisecond }, "proxy header timeout"},
		{"tiny proxy idle timeout", func(c *Config) { c.ProxyIdleTimeout = 0 }, "proxy idle timeout"},
		{"tiny stream write timeout", func(c *Config) { c.StreamWriteTimeout = time.Millisecond }, "stream write timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() of an empty config = nil, want errors")
	}
	for _, want := range []string{"server id", "tls cert", "tls key", "tls ca", "gossip key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// File < environment < flags.
func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.env")
	content := "# comment\nBERTH_SERVER_ID=from-file\nBERTH_REGION=eu\nBERTH_LABELS=disk=nvme, zone=a\nBERTH_GOSSIP_KEY=" + key32 + "\nBERTH_LISTEN=:9000\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BERTH_CONFIG": file, "BERTH_REGION": "us", "BERTH_LISTEN": ":9001", "BERTH_JOIN": "a:7946, b:7946,"}
	env["BERTH_PROXY_MAX_CONNS"], env["BERTH_PROXY_IDLE_TIMEOUT"] = "64", "10m"
	got, err := Load([]string{"--listen", ":9002", "--sample-interval", "5s", "--proxy-header-timeout", "1m"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.ServerID = "from-file"
	want.Region = "us"
	want.Labels = map[string]string{"disk": "nvme", "zone": "a"}
	want.GossipKey = []byte("0123456789abcdef0123456789abcdef")
	want.Listen = ":9002"
	want.Join = []string{"a:7946", "b:7946"}
	want.SampleInterval = 5 * time.Second
	want.ProxyMaxConns, want.ProxyIdleTimeout, want.ProxyHeaderTimeout = 64, 10*time.Minute, time.Minute
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad duration", nil, map[string]string{"BERTH_SAMPLE_INTERVAL": "soon"}, "BERTH_SAMPLE_INTERVAL"},
		{"bad label", nil, map[string]string{"BERTH_LABELS": "novalue"}, "key=value"},
		{"bad key", nil, map[string]string{"BERTH_GOSSIP_KEY": "!!"}, "BERTH_GOSSIP_KEY"},
		{"missing file", nil, map[string]string{"BERTH_CONFIG": "/nonexistent/agent.env"}, "config file"},
		{"unknown flag", []string{"--nope"}, nil, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.args, func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
