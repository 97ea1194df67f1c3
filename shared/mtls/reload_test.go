package mtls_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"encoding/pem"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// syncBuffer is a log sink safe for the handshake goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// reloadingAgent serves as an agent would, with files re-read on every
// handshake, and re-checks the client on every request (CheckPeer), as the
// agent's middleware does.
func reloadingAgent(t *testing.T, f mtls.Files) (*httptest.Server, *mtls.Identity) {
	t.Helper()
	id, err := mtls.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	id.SetCheckInterval(0)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := id.CheckPeer(r.TLS.PeerCertificates, wire.RoleScheduler); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprint(w, "ok ", r.TLS.PeerCertificates[0].SerialNumber.Text(16))
	}))
	srv.TLS = id.ServerConfig(wire.RoleScheduler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, id
}

// reloadingClient is the scheduler's side, also re-reading on every use.
func reloadingClient(t *testing.T, f mtls.Files, serverID string) (*http.Client, *mtls.Identity) {
	t.Helper()
	id, err := mtls.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	id.SetCheckInterval(0)
	tr := &http.Transport{TLSClientConfig: mtls.ForServer(id.ClientConfig(wire.RoleAgent), serverID), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, id
}

func serial(t *testing.T, certFile string) string {
	t.Helper()
	return mustLeaf(t, certFile).SerialNumber.Text(16)
}

// served returns the serial of the certificate a fresh connection sees.
func served(t *testing.T, url string, cfg *tls.Config) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// A replaced certificate is served on the next handshake; a broken one is
// refused and the previous pair stays, logged.
func TestKeyPairReload(t *testing.T) {
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1")
	sched, schedKey := pki.Issue("scheduler", wire.RoleScheduler, false)
	var logs syncBuffer
	srv, _ := reloadingAgent(t, mtls.Files{Cert: cert, Key: key, CA: pki.CAFile,
		Log: hclog.New(&hclog.LoggerOptions{Output: &logs})})
	client, _ := reloadingClient(t, mtls.Files{Cert: sched, Key: schedKey, CA: pki.CAFile}, "ws-1")
	cfg := client.Transport.(*http.Transport).TLSClientConfig

	first := served(t, srv.URL, cfg)
	if want := serial(t, cert); first != want {
		t.Fatalf("served serial %s, want the file's %s", first, want)
	}

	pki.Issue("ws-1", wire.RoleAgent, true, "ws-1") // same files, new pair
	second := served(t, srv.URL, cfg)
	if want := serial(t, cert); second != want || second == first {
		t.Fatalf("after replacing the files: served %s, want the new %s (old %s)", second, want, first)
	}

	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(t, srv.URL, cfg); got != second {
		t.Errorf("after a broken file: served %s, want the previous %s kept", got, second)
	}
	if !strings.Contains(logs.String(), "reload failed, keeping the previous one") {
		t.Errorf("log = %q, want the failed reload", logs.String())
	}
}

// The scheduler's own client certificate is reloaded too.
func TestClientCertificateReload(t *testing.T) {
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1")
	sched, schedKey := pki.Issue("scheduler", wire.RoleScheduler, false)
	srv, _ := reloadingAgent(t, mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	client, _ := reloadingClient(t, mtls.Files{Cert: sched, Key: schedKey, CA: pki.CAFile}, "ws-1")
	client.Transport.(*http.Transport).DisableKeepAlives = true

	for i := range 2 {
		want := "ok " + serial(t, sched)
		_, body, _, err := testutil.GetReused(client, srv.URL)
		if err != nil || body != want {
			t.Fatalf("round %d: body %q err %v, want %q", i, body, err, want)
		}
		pki.Issue("scheduler", wire.RoleScheduler, false)
	}
}

// Trust roots are reloaded: a client of a second CA is refused until that
// CA joins the bundle, and refused again once it leaves.
func TestCAReload(t *testing.T) {
	pki, other := testutil.NewPKI(t), testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1")
	bundle := filepath.Join(t.TempDir(), "bundle.crt")
	copyFile(t, bundle, pki.CAFile)
	srv, _ := reloadingAgent(t, mtls.Files{Cert: cert, Key: key, CA: bundle})
	// The client trusts both CAs.
	both := filepath.Join(t.TempDir(), "both.crt")
	copyFile(t, both, pki.CAFile, other.CAFile)
	sched, schedKey := other.Issue("scheduler", wire.RoleScheduler, false)
	client, _ := reloadingClient(t, mtls.Files{Cert: sched, Key: schedKey, CA: both}, "ws-1")
	client.Transport.(*http.Transport).DisableKeepAlives = true

	steps := []struct {
		name   string
		bundle []string
		wantOK bool
	}{
		{"other CA unknown", []string{pki.CAFile}, false},
		{"other CA added", []string{pki.CAFile, other.CAFile}, true},
		{"other CA removed", []string{pki.CAFile}, false},
	}
	for _, s := range steps {
		copyFile(t, bundle, s.bundle...)
		_, _, _, err := testutil.GetReused(client, srv.URL)
		if (err == nil) != s.wantOK {
			t.Errorf("%s: err = %v, want ok=%v", s.name, err, s.wantOK)
		}
	}
}

func copyFile(t *testing.T, dst string, srcs ...string) {
	t.Helper()
	var all []byte
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(dst+".tmp", all, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		t.Fatal(err)
	}
}

// A revoked scheduler certificate is refused at the handshake, and on the
// next request of a connection that was open before the revocation; taking
// it off the list lets it in again.
func TestRevocation(t *testing.T) {
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1")
	sched, schedKey := pki.Issue("scheduler", wire.RoleScheduler, false)
	crl := filepath.Join(t.TempDir(), "crl.pem")
	pki.WriteCRL(crl)
	srv, _ := reloadingAgent(t, mtls.Files{Cert: cert, Key: key, CA: pki.CAFile, CRL: crl})
	client, _ := reloadingClient(t, mtls.Files{Cert: sched, Key: schedKey, CA: pki.CAFile}, "ws-1")

	if status, _, _, err := testutil.GetReused(client, srv.URL); err != nil || status != http.StatusOK {
		t.Fatalf("before revocation: %d %v", status, err)
	}
	pki.WriteCRL(crl, sched)
	status, body, reused, err := testutil.GetReused(client, srv.URL)
	if err != nil || !reused || status != http.StatusForbidden || !strings.Contains(body, "certificate revoked") {
		t.Fatalf("open connection after revocation: status %d body %q reused %v err %v, want 403 certificate revoked on the reused connection",
			status, body, reused, err)
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	if _, _, _, err := testutil.GetReused(client, srv.URL); err == nil {
		t.Fatal("new connection with a revoked certificate succeeded")
	}

	pki.WriteCRL(crl) // restored
	if status, _, _, err := testutil.GetReused(client, srv.URL); err != nil || status != http.StatusOK {
		t.Fatalf("after un-revoking: %d %v", status, err)
	}
}

// The scheduler refuses an agent whose certificate is revoked.
func TestClientRefusesRevokedAgent(t *testing.T) {
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1")
	sched, schedKey := pki.Issue("scheduler", wire.RoleScheduler, false)
	crl := filepath.Join(t.TempDir(), "crl.pem")
	pki.WriteCRL(crl, cert)
	srv, _ := reloadingAgent(t, mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	client, _ := reloadingClient(t, mtls.Files{Cert: sched, Key: schedKey, CA: pki.CAFile, CRL: crl}, "ws-1")
	_, _, _, err := testutil.GetReused(client, srv.URL)
	if !errors.Is(err, mtls.ErrRevoked) {
		t.Fatalf("err = %v, want ErrRevoked", err)
	}
}

// A list that does not load (another CA's, garbage) keeps the previous one.
func TestCRLReloadRefusesForeignList(t *testing.T) {
	pki, other := testutil.NewPKI(t), testutil.NewPKI(t)
	sched, _ := pki.Issue("scheduler", wire.RoleScheduler, false)
	crl := filepath.Join(t.TempDir(), "crl.pem")
	pki.WriteCRL(crl, sched)
	if _, err := mtls.LoadCRLFile(crl, mustCA(t, other.CAFile)); err == nil || !strings.Contains(err.Error(), "not signed by a CA of the bundle") {
		t.Fatalf("loading another CA's list: err = %v", err)
	}
	list, err := mtls.LoadCRLFile(crl, mustCA(t, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	list.SetCheckInterval(0)
	leaf := mustLeaf(t, sched)
	for _, replace := range []func(){
		func() { other.WriteCRL(crl) },
		func() { os.WriteFile(crl, []byte("garbage"), 0o600) },
	} {
		replace()
		if err := list.Check(leaf); !errors.Is(err, mtls.ErrRevoked) {
			t.Errorf("after a bad replacement: Check = %v, want the previous list (ErrRevoked) kept", err)
		}
	}
}

func mustCA(t *testing.T, path string) *mtls.CAFile {
	t.Helper()
	ca, err := mtls.LoadCAFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustLeaf(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", certFile, err)
	}
	return cert
}

// The role is the URI SAN's: an OU-only certificate (issued before role
// URIs) is refused with a hint to re-issue it.
func TestRoleByURI(t *testing.T) {
	pki := testutil.NewPKI(t)
	ca := mustCA(t, pki.CAFile)
	v := &mtls.Verifier{CA: ca}
	uriSched, _ := pki.Issue("scheduler", wire.RoleScheduler, false)
	ouSched, _ := pki.IssueOUOnly("old-scheduler", wire.RoleScheduler, false)
	agent, _ := pki.Issue("ws-2", wire.RoleAgent, true, "ws-2")
	tests := []struct {
		name    string
		cert    string
		wantErr string
	}{
		{"scheduler by URI SAN", uriSched, ""},
		{"OU-only scheduler", ouSched, "re-issue it with scripts/pki.sh renew"},
		{"agent role", agent, "want one of [berth-scheduler]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify([]*x509.Certificate{mustLeaf(t, tt.cert)}, x509.ExtKeyUsageClientAuth, "", wire.RoleScheduler)
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, mtls.ErrWrongRole) {
					t.Errorf("err = %v, want ErrWrongRole", err)
				}
			}
			if tt.wantErr == "" && got != "" || !strings.Contains(got, tt.wantErr) {
				t.Errorf("err = %q, want it to contain %q", got, tt.wantErr)
			}
		})
	}
	if diff := cmp.Diff([]string{wire.RoleScheduler}, mtls.Role(mustLeaf(t, uriSched))); diff != "" {
		t.Errorf("Role (-want +got):\n%s", diff)
	}
	if got := mtls.RoleURI(wire.RoleAgent); got != "spiffe://berth/agent" {
		t.Errorf("RoleURI(agent) = %q", got)
	}
}

// A scheduler certificate (clientAuth only) cannot serve as an agent even
// with the agent role: the extended key usage is checked.
func TestServerNeedsServerAuth(t *testing.T) {
	pki := testutil.NewPKI(t)
	v := &mtls.Verifier{CA: mustCA(t, pki.CAFile)}
	clientOnly, _ := pki.Issue("ws-1", wire.RoleAgent, false, "ws-1")
	err := v.Verify([]*x509.Certificate{mustLeaf(t, clientOnly)}, x509.ExtKeyUsageServerAuth, "ws-1", wire.RoleAgent)
	if err == nil || !strings.Contains(err.Error(), "key usage") {
		t.Fatalf("err = %v, want an extended key usage refusal", err)
	}
}

// The per-request re-verification the agent does (CheckPeer): chain,
// revocation list and role, files checked at most once a second.
func BenchmarkCheckPeer(b *testing.B) {
	pki := testutil.NewPKI(b)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1")
	sched, _ := pki.Issue("scheduler", wire.RoleScheduler, false)
	crl := filepath.Join(b.TempDir(), "crl.pem")
	pki.WriteCRL(crl)
	id, err := mtls.Load(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile, CRL: crl})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := os.ReadFile(sched)
	block, _ := pem.Decode(raw)
	leaf, _ := x509.ParseCertificate(block.Bytes)
	certs := []*x509.Certificate{leaf}
	b.ReportAllocs()
	for b.Loop() {
		if err := id.CheckPeer(certs, wire.RoleScheduler); err != nil {
			b.Fatal(err)
		}
	}
}

// A list refused because its CA is not in the bundle yet is read again
// when the bundle changes, though the list's own file did not.
func TestCRLReadAgainWhenTheBundleChanges(t *testing.T) {
	pki, next := testutil.NewPKI(t), testutil.NewPKI(t)
	dir := t.TempDir()
	bundle, crl := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "crl.pem")
	first, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, first, 0o600); err != nil {
		t.Fatal(err)
	}
	pki.WriteCRL(crl)
	ca := mustCA(t, bundle)
	list, err := mtls.LoadCRLFile(crl, ca)
	if err != nil {
		t.Fatal(err)
	}
	ca.SetCheckInterval(0)
	list.SetCheckInterval(0)
	agent, _ := next.Issue("ws-9", wire.RoleAgent, true, "ws-9")
	leaf := mustLeaf(t, agent)
	next.WriteCRL(crl, agent) // signed by a CA the bundle does not hold yet
	if err := list.Check(leaf); err != nil {
		t.Fatalf("before the bundle holds its CA: Check = %v, want the previous (empty) list", err)
	}
	second, err := os.ReadFile(next.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, append(first, second...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := list.Check(leaf); !errors.Is(err, mtls.ErrRevoked) {
		t.Errorf("after the bundle gained its CA: Check = %v, want ErrRevoked", err)
	}
}
