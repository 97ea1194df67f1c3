package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth/shared/envflag"
)

// An IPv6 address goes into the SAN as an IP and into every host:port in
// brackets, so the agent's configuration validates.
func TestWorkspaceServerInitScriptIPv6(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	script, _ := filepath.Abs("../../../scripts/workspace-server-init.sh")
	for _, addr := range []string{"2001:db8::1", "[2001:db8::1]"} {
		dir := t.TempDir()
		out := filepath.Join(dir, "bundle")
		b, err := exec.Command(script, "--id", "ws-v6", "--address", addr,
			"--pki", filepath.Join(dir, "pki"), "--out", out).CombinedOutput()
		if err != nil {
			t.Fatalf("--address %s: %v\n%s", addr, err, b)
		}
		vals, err := envflag.ReadEnvFile(filepath.Join(out, "agent.env"))
		if err != nil {
			t.Fatal(err)
		}
		if vals["BERTH_ADVERTISE_ADDR"] != "[2001:db8::1]:7443" || vals["BERTH_GOSSIP_ADVERTISE"] != "[2001:db8::1]:7946" || vals["BERTH_GOSSIP_BIND"] != "[::]:7946" {
			t.Errorf("--address %s: advertise %q, gossip advertise %q, gossip bind %q", addr,
				vals["BERTH_ADVERTISE_ADDR"], vals["BERTH_GOSSIP_ADVERTISE"], vals["BERTH_GOSSIP_BIND"])
		}
		vals["BERTH_TLS_CERT"], vals["BERTH_TLS_KEY"], vals["BERTH_TLS_CA"] = filepath.Join(out, "agent.crt"), filepath.Join(out, "agent.key"), filepath.Join(out, "ca.crt")
		vals["BERTH_GOSSIP_KEY_FILE"] = filepath.Join(out, "gossip.key")
		cfg, err := Load(nil, func(k string) string { return vals[k] })
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("--address %s: Validate: %v", addr, err)
		}
		crt, _ := os.ReadFile(filepath.Join(out, "agent.crt"))
		block, _ := pem.Decode(crt)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "2001:db8::1" {
			t.Errorf("--address %s: IP SANs = %v, want [2001:db8::1]", addr, cert.IPAddresses)
		}
	}
}

// A value option with no value, an unknown option, or an address with a
// port is a usage error (exit 2) that names the problem, before anything is
// written.
func TestWorkspaceServerInitScriptUsageErrors(t *testing.T) {
	script, _ := filepath.Abs("../../../scripts/workspace-server-init.sh")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--id"}, "--id needs a value"},
		{[]string{"--id", "ws-1", "--address"}, "--address needs a value"},
		{[]string{"--id", "ws-1", "--address", "--region", "eu"}, "--address needs a value"},
		{[]string{"--id", "ws-1", "--address", "203.0.113.10", "--gpu-count"}, "--gpu-count needs a value"},
		{[]string{"--id", "ws-1", "--bogus", "x"}, "unknown option --bogus"},
		{[]string{"--id", "ws-1", "--address", "203.0.113.10:7443"}, "without a port"},
	} {
		dir := t.TempDir() // the defaults --pki ./pki and --out ./hosts/ID land here
		cmd := exec.Command(script, tc.args...)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: err = %v, want exit status 2\n%s", tc.args, err, b)
			continue
		}
		if !strings.Contains(string(b), tc.want) || strings.Contains(string(b), "unbound variable") {
			t.Errorf("%q: output %q, want it to contain %q", tc.args, b, tc.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%q: wrote %d entries before failing", tc.args, len(entries))
		}
	}
}
