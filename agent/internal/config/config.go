// Package config is the agent's configuration: one struct with Default(),
// Load() (file, then environment, then flags, each overriding the last) and
// Validate(). Only this package and main read flags, the environment or files;
// every component gets its typed part of Config through its constructor.
package config

import (
	"bufio"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is everything an agent needs to run.
type Config struct {
	ServerID string            // unique server id; the first DNS SAN of its certificate
	Region   string            // placement region, e.g. "eu-central"
	Labels   map[string]string // placement labels

	Listen        string // mTLS API listen address
	AdvertiseAddr string // host:port the scheduler reaches the API at; gossiped
	TLSCert       string
	TLSKey        string
	TLSCA         string

	GossipBind      string   // host:port memberlist binds
	GossipAdvertise string   // host:port memberlist advertises ("" = derived)
	GossipKey       []byte   // 16, 24 or 32 bytes (AES); required
	ClusterLabel    string   // memberlist label; nodes of other clusters are refused
	Join            []string // peers to join at start (other agents or the scheduler)

	DockerHost string // must be a unix:// socket: berth never opens a Docker TCP port
	DataDir    string // root of workspace data; every bind mount must lie under it

	SampleInterval time.Duration // how often capacity is measured and re-gossiped
	GPUType        string
	GPUCount       int

	LogLevel string
	LogJSON  bool
}

// Default returns a configuration with every optional field set.
func Default() Config {
	return Config{
		Listen:         ":7443",
		GossipBind:     "0.0.0.0:7946",
		ClusterLabel:   "berth",
		DockerHost:     "unix:///var/run/docker.sock",
		DataDir:        "/var/lib/berth",
		SampleInterval: 2 * time.Second,
		LogLevel:       "info",
		Labels:         map[string]string{},
	}
}

var serverIDRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Validate reports every problem at once, so an operator fixes them in one go.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !serverIDRe.MatchString(c.ServerID) {
		add("server id %q: want 1-63 lower-case letters, digits, '.' or '-' (BERTH_SERVER_ID)", c.ServerID)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen address %q: %v", c.Listen, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			add("advertise address %q: %v", c.AdvertiseAddr, err)
		}
	}
	for name, path := range map[string]string{"tls cert": c.TLSCert, "tls key": c.TLSKey, "tls ca": c.TLSCA} {
		if path == "" {
			add("%s: required (agents serve only mTLS)", name)
		}
	}
	if _, _, err := net.SplitHostPort(c.GossipBind); err != nil {
		add("gossip bind %q: %v", c.GossipBind, err)
	}
	switch len(c.GossipKey) {
	case 16, 24, 32:
	default:
		add("gossip key: want 16, 24 or 32 bytes, got %d (BERTH_GOSSIP_KEY or BERTH_GOSSIP_KEY_FILE)", len(c.GossipKey))
	}
	if c.ClusterLabel == "" {
		add("cluster label: required")
	}
	if !strings.HasPrefix(c.DockerHost, "unix://") {
		add("docker host %q: only a unix:// socket is allowed", c.DockerHost)
	}
	if !filepath.IsAbs(c.DataDir) {
		add("data dir %q: must be an absolute path", c.DataDir)
	}
	if c.SampleInterval < 100*time.Millisecond {
		add("sample interval %s: must be at least 100ms", c.SampleInterval)
	}
	if c.GPUCount < 0 {
		add("gpu count %d: must not be negative", c.GPUCount)
	}
	return errors.Join(errs...)
}

// Load builds a Config from Default(), then the file named by --config or
// BERTH_CONFIG (KEY=VALUE lines with the same names as the environment, the
// format systemd's EnvironmentFile reads), then the environment, then flags.
func Load(args []string, getenv func(string) string) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	configFile := fs.String("config", getenv("BERTH_CONFIG"), "KEY=VALUE config file")
	flagVals := map[string]*string{}
	for _, k := range keys {
		flagVals[k.env] = fs.String(k.flag, "", k.help)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	values := map[string]string{}
	if *configFile != "" {
		fileVals, err := readEnvFile(*configFile)
		if err != nil {
			return c, err
		}
		values = fileVals
	}
	for _, k := range keys {
		if v := getenv(k.env); v != "" {
			values[k.env] = v
		}
	}
	fs.Visit(func(f *flag.Flag) {
		for _, k := range keys {
			if k.flag == f.Name {
				values[k.env] = *flagVals[k.env]
			}
		}
	})
	for _, k := range keys {
		v, ok := values[k.env]
		if !ok {
			continue
		}
		if err := k.set(&c, v); err != nil {
			return c, fmt.Errorf("%s=%q: %w", k.env, v, err)
		}
	}
	return c, nil
}

type key struct {
	env, flag, help string
	set             func(*Config, string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

var keys = []key{
	{"BERTH_SERVER_ID", "server-id", "unique server id", str(func(c *Config) *string { return &c.ServerID })},
	{"BERTH_REGION", "region", "placement region", str(func(c *Config) *string { return &c.Region })},
	{"BERTH_LABELS", "labels", "placement labels, k=v,k=v", func(c *Config, v string) error {
		labels, err := ParseLabels(v)
		c.Labels = labels
		return err
	}},
	{"BERTH_LISTEN", "listen", "mTLS API listen address", str(func(c *Config) *string { return &c.Listen })},
	{"BERTH_ADVERTISE_ADDR", "advertise-addr", "host:port the scheduler reaches this agent at", str(func(c *Config) *string { return &c.AdvertiseAddr })},
	{"BERTH_TLS_CERT", "tls-cert", "agent certificate (PEM)", str(func(c *Config) *string { return &c.TLSCert })},
	{"BERTH_TLS_KEY", "tls-key", "agent key (PEM)", str(func(c *Config) *string { return &c.TLSKey })},
	{"BERTH_TLS_CA", "tls-ca", "cluster CA (PEM)", str(func(c *Config) *string { return &c.TLSCA })},
	{"BERTH_GOSSIP_BIND", "gossip-bind", "memberlist bind host:port", str(func(c *Config) *string { return &c.GossipBind })},
	{"BERTH_GOSSIP_ADVERTISE", "gossip-advertise", "memberlist advertise host:port", str(func(c *Config) *string { return &c.GossipAdvertise })},
	{"BERTH_GOSSIP_KEY", "gossip-key", "gossip key, base64", func(c *Config, v string) error {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		c.GossipKey = b
		return err
	}},
	{"BERTH_GOSSIP_KEY_FILE", "gossip-key-file", "file holding the base64 gossip key", func(c *Config, v string) error {
		raw, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		c.GossipKey = b
		return err
	}},
	{"BERTH_CLUSTER_LABEL", "cluster-label", "gossip cluster label", str(func(c *Config) *string { return &c.ClusterLabel })},
	{"BERTH_JOIN", "join", "comma-separated gossip peers", func(c *Config, v string) error {
		c.Join = SplitList(v)
		return nil
	}},
	{"BERTH_DOCKER_HOST", "docker-host", "local Docker socket (unix://)", str(func(c *Config) *string { return &c.DockerHost })},
	{"BERTH_DATA_DIR", "data-dir", "workspace data root", str(func(c *Config) *string { return &c.DataDir })},
	{"BERTH_SAMPLE_INTERVAL", "sample-interval", "capacity sampling period", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		c.SampleInterval = d
		return err
	}},
	{"BERTH_GPU_TYPE", "gpu-type", "GPU model of this host", str(func(c *Config) *string { return &c.GPUType })},
	{"BERTH_GPU_COUNT", "gpu-count", "number of GPUs", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.GPUCount = n
		return err
	}},
	{"BERTH_LOG_LEVEL", "log-level", "trace, debug, info, warn, error", str(func(c *Config) *string { return &c.LogLevel })},
	{"BERTH_LOG_JSON", "log-json", "JSON logs (true/false)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.LogJSON = b
		return err
	}},
}

// ParseLabels parses "k=v,k=v".
func ParseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for _, part := range SplitList(s) {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("label %q: want key=value", part)
		}
		labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return labels, nil
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want KEY=VALUE", path, n)
		}
		vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return vals, sc.Err()
}
