package config

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"berth/shared/envflag"
)

// scripts/workspace-server-init.sh writes a bundle whose agent.env is a
// valid agent configuration and whose certificate names the server; running
// it twice changes nothing.
func TestWorkspaceServerInitScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	script, _ := filepath.Abs("../../../scripts/workspace-server-init.sh")
	out := filepath.Join(dir, "bundle")
	args := []string{"--id", "ws-eu-1", "--address", "203.0.113.10", "--hostname", "ws-eu-1.example.net",
		"--region", "eu-central", "--labels", "disk=nvme", "--join", "sched.example.net:7946",
		"--pki", filepath.Join(dir, "pki"), "--out", out}
	run := func() map[string][]byte {
		t.Helper()
		if b, err := exec.Command(script, args...).CombinedOutput(); err != nil {
			t.Fatalf("script: %v\n%s", err, b)
		}
		files := map[string][]byte{}
		entries, _ := os.ReadDir(out)
		for _, e := range entries {
			files[e.Name()], _ = os.ReadFile(filepath.Join(out, e.Name()))
		}
		return files
	}
	first, second := run(), run()
	for name, b := range first {
		if string(second[name]) != string(b) {
			t.Errorf("%s changed on the second run", name)
		}
	}
	for _, want := range []string{"agent.crt", "agent.key", "ca.crt", "gossip.key", "agent.env", "berth-agent.service"} {
		if _, ok := first[want]; !ok {
			t.Errorf("bundle lacks %s", want)
		}
	}

	vals, err := envflag.ReadEnvFile(filepath.Join(out, "agent.env"))
	if err != nil {
		t.Fatal(err)
	}
	// The paths point at /etc/berth on the host; check them against the bundle.
	vals["BERTH_TLS_CERT"], vals["BERTH_TLS_KEY"], vals["BERTH_TLS_CA"] = filepath.Join(out, "agent.crt"), filepath.Join(out, "agent.key"), filepath.Join(out, "ca.crt")
	vals["BERTH_GOSSIP_KEY_FILE"] = filepath.Join(out, "gossip.key")
	cfg, err := Load(nil, func(k string) string { return vals[k] })
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.ServerID != "ws-eu-1" || cfg.Region != "eu-central" || cfg.Labels["disk"] != "nvme" || cfg.AdvertiseAddr != "203.0.113.10:7443" {
		t.Errorf("config = %+v", cfg)
	}

	block, _ := pem.Decode(first["agent.crt"])
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.DNSNames[0] != "ws-eu-1" || !slices.Contains(cert.DNSNames, "ws-eu-1.example.net") || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "203.0.113.10" {
		t.Errorf("SANs = %v %v, want ws-eu-1 first, the hostname and the address", cert.DNSNames, cert.IPAddresses)
	}
	if !slices.Contains(cert.Subject.OrganizationalUnit, "berth-agent") {
		t.Errorf("OU = %v, want berth-agent", cert.Subject.OrganizationalUnit)
	}
	if info, _ := os.Stat(filepath.Join(out, "agent.key")); info.Mode().Perm() != 0o600 {
		t.Errorf("agent.key mode = %v, want 0600", info.Mode().Perm())
	}
}
