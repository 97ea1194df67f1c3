package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// The key lifecycle on the running cluster, without restarting a process:
// a replaced agent certificate is served, a revoked scheduler certificate is
// refused on its next request, and the gossip key is rotated with every
// member staying alive. Each test leaves .dev as it found it (t.Cleanup).

// processes identifies the cluster's processes: each host's agent pid and
// the scheduler container's main pid. Equal before and after a test = no
// restart.
func processes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range hosts {
		pid, err := exec.Command("docker", "exec", hostContainer(t, h.id), "cat", "/run/berth-agent.pid").Output()
		if err != nil {
			t.Fatalf("%s agent pid: %v", h.id, err)
		}
		out[h.id] = strings.TrimSpace(string(pid))
	}
	out["scheduler"] = docker(t, "inspect", "-f", "{{.State.Pid}} {{.State.StartedAt}}", hostContainer(t, "scheduler"))
	return out
}

func noRestart(t *testing.T) {
	t.Helper()
	before := processes(t)
	t.Cleanup(func() {
		if after := processes(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("processes changed: before %v, after %v: want no restart", before, after)
		}
	})
}

func pkiDir(t *testing.T) string { return filepath.Join(repoRoot(t), ".dev", "pki") }

func pkiSh(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "pki.sh"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pki.sh %v: %v\n%s", args, err, out)
	}
}

// keepFiles restores the files' contents at the end of the test, each by
// rename (what the agents see of .dev/pki is a directory mount).
func keepFiles(t *testing.T, paths ...string) {
	t.Helper()
	saved := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	t.Cleanup(func() {
		for p, b := range saved {
			fi, err := os.Stat(p)
			if err != nil {
				t.Errorf("restore %s: %v", p, err)
				continue
			}
			if err := os.WriteFile(p+".restore", b, fi.Mode().Perm()); err != nil {
				t.Errorf("restore %s: %v", p, err)
				continue
			}
			if err := os.Rename(p+".restore", p); err != nil {
				t.Errorf("restore %s: %v", p, err)
			}
		}
	})
}

func leafSerial(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// schedulerIdentity is the development scheduler certificate, as a test's
// own mTLS client.
func schedulerIdentity(t *testing.T) *mtls.Identity {
	t.Helper()
	dir := pkiDir(t)
	id, err := mtls.Load(mtls.Files{Cert: filepath.Join(dir, "scheduler.crt"), Key: filepath.Join(dir, "scheduler.key"), CA: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// servedSerial is the serial of the certificate an agent serves on a new
// connection.
func servedSerial(id *mtls.Identity, serverID, addr string) (string, error) {
	conn, err := tls.Dial("tcp", addr, mtls.ForServer(id.ClientConfig(wire.RoleAgent), serverID))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

// (a) A host's certificate files replaced (pki.sh renew): the agent serves
// the new certificate on the next connection, no restart.
func TestKeysAgentCertificateRotation(t *testing.T) {
	needCluster(t)
	noRestart(t)
	const host = "ws-local-1"
	addr := hosts[0].addr
	dir := pkiDir(t)
	crt, key := filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")
	original := leafSerial(t, crt)
	id := schedulerIdentity(t)
	t.Cleanup(func() { // after keepFiles' restore (cleanups run last first)
		waitFor(t, 10*time.Second, "the original certificate served again", func() (bool, string) {
			s, err := servedSerial(id, host, addr)
			return s == original, fmt.Sprint(s, err)
		})
	})
	keepFiles(t, crt, key)
	if s, err := servedSerial(id, host, addr); err != nil || s != original {
		t.Fatalf("before: served %s (%v), want the file's %s", s, err, original)
	}

	pkiSh(t, "renew", dir, host)
	renewed := leafSerial(t, crt)
	start := time.Now()
	waitFor(t, 10*time.Second, "the renewed certificate served", func() (bool, string) {
		s, err := servedSerial(id, host, addr)
		return s == renewed, fmt.Sprint(s, err)
	})
	t.Logf("renewed certificate %s served %s after the files changed", renewed, time.Since(start).Round(time.Millisecond))
	// The scheduler keeps reaching it (its probes verify the new certificate).
	waitHealth(t, host, 15*time.Second, "placeable with the renewed certificate", placeable)
}

// agentCRLConfigured reports whether the hosts run with BERTH_TLS_CRL (a
// cluster created before it cannot check revocations).
func agentCRLConfigured(t *testing.T) bool {
	env := docker(t, "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", hostContainer(t, hosts[0].id))
	return strings.Contains(env, "BERTH_TLS_CRL=")
}

// (b) The scheduler's certificate revoked (pki.sh revoke): an agent refuses
// the next request of a connection opened before, refuses new handshakes,
// and the compose scheduler's own probes are refused (its servers turn
// unhealthy); un-revoked, everything works again. No restart.
func TestKeysRevokeSchedulerCertificate(t *testing.T) {
	needCluster(t)
	if !agentCRLConfigured(t) {
		t.Skip("the hosts run without BERTH_TLS_CRL: recreate the cluster from the current docker-compose.yml")
	}
	noRestart(t)
	dir := pkiDir(t)
	serial := leafSerial(t, filepath.Join(dir, "scheduler.crt"))
	keepFiles(t, filepath.Join(dir, "crl.pem"), filepath.Join(dir, "revoked.txt"))
	t.Cleanup(func() {
		for _, h := range hosts {
			waitHealth(t, h.id, 30*time.Second, "placeable again after the test", placeable)
		}
	})

	id := schedulerIdentity(t)
	tr := &http.Transport{TLSClientConfig: mtls.ForServer(id.ClientConfig(wire.RoleAgent), hosts[0].id), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "https://" + hosts[0].addr + wire.PathHealth
	if status, body, _, err := testutil.GetReused(c, url); err != nil || status != http.StatusOK {
		t.Fatalf("before revocation: %d %s %v", status, body, err)
	}

	pkiSh(t, "revoke", dir, "scheduler")
	revoked := time.Now()
	var lastStatus int
	waitFor(t, 10*time.Second, "the open connection's next request refused", func() (bool, string) {
		status, body, reused, err := testutil.GetReused(c, url)
		lastStatus = status
		if err != nil || !reused {
			t.Fatalf("request on the open connection: reused %v, err %v (want the connection kept and the request refused)", reused, err)
		}
		return status == http.StatusForbidden && strings.Contains(body, "certificate revoked"), fmt.Sprintf("%d %s", status, body)
	})
	t.Logf("open connection refused (%d) %s after the revocation", lastStatus, time.Since(revoked).Round(time.Millisecond))
	tr.CloseIdleConnections()
	if _, _, _, err := testutil.GetReused(c, url); err == nil {
		t.Error("a new connection with the revoked certificate succeeded")
	}
	// The compose scheduler holds the same (revoked) certificate: its
	// health probes on its kept-alive connections are refused.
	for _, h := range hosts {
		waitHealth(t, h.id, 15*time.Second, "unhealthy: the scheduler's requests refused", func(s string) bool { return s == "unhealthy" })
	}
	t.Logf("the scheduler's probes refused on both hosts %s after the revocation", time.Since(revoked).Round(time.Millisecond))

	pkiSh(t, "unrevoke", dir, serial)
	waitFor(t, 10*time.Second, "accepted again after un-revoking", func() (bool, string) {
		status, body, _, err := testutil.GetReused(c, url)
		return err == nil && status == http.StatusOK, fmt.Sprint(status, body, err)
	})
	for _, h := range hosts {
		waitHealth(t, h.id, 30*time.Second, "placeable again after un-revoking", placeable)
	}
}

// clusterServices are the compose services that are gossip members.
var clusterServices = []string{"ws-local-1", "ws-local-2", "scheduler"}

// waitKeyring waits until every member logged, since since, a keyring of n
// keys with primary as the primary.
func waitKeyring(t *testing.T, since time.Time, n int, primary []byte, step string) {
	t.Helper()
	want := fmt.Sprintf("gossip keyring changed: keys=%d primary=%s", n, gossip.KeyID(primary))
	for _, svc := range clusterServices {
		waitFor(t, 15*time.Second, step+": "+svc+" installed the keyring", func() (bool, string) {
			out, _ := exec.Command("docker", "logs", "--since", since.UTC().Format(time.RFC3339Nano), hostContainer(t, svc)).CombinedOutput()
			return bytes.Contains(out, []byte(want)), "no log line " + want
		})
	}
}

// allAlive fails unless the scheduler sees both hosts alive in gossip.
func allAlive(t *testing.T, step string) {
	t.Helper()
	alive := map[string]bool{}
	for _, m := range getMembers(t) {
		alive[m.Name] = m.State == gossip.StateAlive
	}
	for _, h := range hosts {
		if !alive[h.id] {
			t.Fatalf("%s: %s not alive in the scheduler's gossip view", step, h.id)
		}
	}
}

// aliveFor checks that every member stays alive for d: a member left out
// of a key change would be cut off and suspected within a few seconds.
func aliveFor(t *testing.T, d time.Duration, step string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		allAlive(t, step)
	}
}

// (c) Gossip key rotation on the running cluster: add, use, remove (pki.sh
// gossip-key-*), each picked up by all three members from the bind-mounted
// file, with every member alive throughout. No restart.
func TestKeysGossipRotation(t *testing.T) {
	needCluster(t)
	noRestart(t)
	file := filepath.Join(repoRoot(t), ".dev", "gossip.key")
	original, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	oldKeys, err := gossip.ParseKeys(original)
	if err != nil || len(oldKeys) != 1 {
		t.Fatalf("%s: %d keys (%v), want one (no rotation in progress)", file, len(oldKeys), err)
	}
	t.Cleanup(func() {
		// In place: the file is a single-file bind mount.
		if err := os.WriteFile(file, original, 0o600); err != nil {
			t.Errorf("restore %s: %v", file, err)
		}
	})
	allAlive(t, "before")

	start := time.Now()
	pkiSh(t, "gossip-key-add", file)
	keys := readKeys(t, file)
	newKey := keys[1]
	waitKeyring(t, start, 2, oldKeys[0], "add")
	aliveFor(t, 3*time.Second, "add")

	at := time.Now()
	pkiSh(t, "gossip-key-use", file)
	waitKeyring(t, at, 2, newKey, "use")
	aliveFor(t, 3*time.Second, "use")

	at = time.Now()
	pkiSh(t, "gossip-key-remove", file)
	waitKeyring(t, at, 1, newKey, "remove")
	aliveFor(t, 5*time.Second, "remove")
	t.Logf("gossip key rotated on 3 members in %s, all alive throughout", time.Since(start).Round(time.Millisecond))

	// Back to the original key the same way, so the cluster ends as it began.
	at = time.Now()
	if err := os.WriteFile(file, []byte(fmt.Sprintf("%s\n%s\n", base64.StdEncoding.EncodeToString(newKey), bytes.TrimSpace(original))), 0o600); err != nil {
		t.Fatal(err)
	}
	waitKeyring(t, at, 2, newKey, "restore: add")
	at = time.Now()
	if err := os.WriteFile(file, []byte(fmt.Sprintf("%s\n%s\n", bytes.TrimSpace(original), base64.StdEncoding.EncodeToString(newKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	waitKeyring(t, at, 2, oldKeys[0], "restore: use")
	at = time.Now()
	if err := os.WriteFile(file, original, 0o600); err != nil {
		t.Fatal(err)
	}
	waitKeyring(t, at, 1, oldKeys[0], "restore: remove")
	aliveFor(t, 3*time.Second, "restored")
}

func readKeys(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := gossip.ParseKeys(b)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
