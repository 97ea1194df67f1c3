package mtls_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// agentServer starts an HTTPS server configured as an agent would be.
func agentServer(t *testing.T, pki *testutil.PKI) *httptest.Server {
	t.Helper()
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1", "127.0.0.1")
	cfg, err := mtls.ServerConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleScheduler)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok ", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, pki *testutil.PKI, name, role, serverID string) *http.Client {
	t.Helper()
	cert, key := pki.Issue(name, role, false)
	cfg, err := mtls.ClientConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: mtls.ForServer(cfg, serverID)}}
}

func TestMTLS(t *testing.T) {
	pki := testutil.NewPKI(t)
	other := testutil.NewPKI(t) // an unknown CA
	srv := agentServer(t, pki)

	tests := []struct {
		name    string
		client  *http.Client
		url     string
		wantOK  bool
		wantErr string // substring of the client-side error, when refused
	}{
		{"scheduler with right server id", client(t, pki, "scheduler", wire.RoleScheduler, "ws-1"), srv.URL, true, ""},
		{"client cert from unknown CA", client(t, other, "scheduler", wire.RoleScheduler, "ws-1"), srv.URL, false, "tls"},
		{"client with agent role", client(t, pki, "ws-2", wire.RoleAgent, "ws-1"), srv.URL, false, "tls"},
		{"scheduler expecting another server", client(t, pki, "scheduler", wire.RoleScheduler, "ws-2"), srv.URL, false, "ws-2"},
		{"no client certificate", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}, srv.URL, false, "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(tt.url)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Get: %v, want success", err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if got, want := string(body), "ok scheduler"; got != want {
					t.Errorf("body = %q, want %q", got, want)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("Get succeeded with status %d, want a TLS refusal", resp.StatusCode)
			}
			if !strings.Contains(strings.ToLower(err.Error()), tt.wantErr) {
				t.Errorf("error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

// Plain HTTP to the agent port never reaches a handler.
func TestMTLSRefusesPlainHTTP(t *testing.T) {
	pki := testutil.NewPKI(t)
	srv := agentServer(t, pki)
	resp, err := http.Get("http://" + srv.Listener.Addr().String())
	if err != nil {
		return // connection refused or reset: refused
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || strings.HasPrefix(string(body), "ok") {
		t.Fatalf("plain HTTP got %d %q, want 400 from the TLS layer", resp.StatusCode, body)
	}
}

// An agent certificate without the agent role is refused by the scheduler.
func TestClientRefusesServerWithoutAgentRole(t *testing.T) {
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleScheduler, true, "ws-1", "127.0.0.1")
	cfg, err := mtls.ServerConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleScheduler)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	resp, err := client(t, pki, "scheduler", wire.RoleScheduler, "ws-1").Get(srv.URL)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, mtls.ErrWrongRole) {
		t.Fatalf("err = %v, want ErrWrongRole", err)
	}
}

func TestConfigErrors(t *testing.T) {
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("x", wire.RoleAgent, true, "x")
	tests := []struct {
		name string
		f    mtls.Files
	}{
		{"missing cert", mtls.Files{Cert: "/nonexistent", Key: key, CA: pki.CAFile}},
		{"missing CA", mtls.Files{Cert: cert, Key: key, CA: "/nonexistent"}},
		{"CA file holds no certificate", mtls.Files{Cert: cert, Key: key, CA: key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mtls.ServerConfig(tt.f, wire.RoleScheduler); err == nil {
				t.Error("ServerConfig succeeded, want error")
			}
		})
	}
}
