package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/internal/config"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// A running agent (run, as main calls it) picks up its key material while
// it runs: a replaced certificate is served, a revoked scheduler certificate
// is refused on the next request of an open connection and let in again
// once un-revoked, and its gossip keyring follows the key file through the
// three rotation steps. The same agent serves throughout: nothing restarts.
func TestRunReloadsKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the agent against the local Docker daemon: not in -short")
	}
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("no Docker daemon on /var/run/docker.sock")
	}
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("ws-1", wire.RoleAgent, true, "ws-1", "127.0.0.1")
	schedCert, schedKey := pki.Issue("scheduler", wire.RoleScheduler, false)
	crl := filepath.Join(pki.Dir, "crl.pem")
	pki.WriteCRL(crl)
	k1, k2 := []byte("11111111111111111111111111111111"), []byte("22222222222222222222222222222222")
	keyFile := filepath.Join(pki.Dir, "gossip.key")
	writeKeys(t, keyFile, k1)

	cfg := config.Default()
	cfg.ServerID = "ws-1"
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA, cfg.TLSCRL = cert, key, pki.CAFile, crl
	cfg.GossipBind = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cfg.GossipKeys, cfg.GossipKey, cfg.GossipKeyFile = [][]byte{k1}, k1, keyFile
	cfg.ClusterLabel = "berth-test"
	cfg.DataDir = t.TempDir()
	// The agent bind-mounts its data directory nosuid,nodev onto itself
	// (docker.New) and leaves it mounted, as a host keeps it.
	t.Cleanup(func() { syscall.Unmount(cfg.DataDir, syscall.MNT_DETACH) })
	cfg.FenceLease = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &testWriter{t: t}
	go func() {
		done <- run(ctx, cfg, hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Info}))
	}()
	t.Cleanup(func() {
		cancel()
		err := <-done
		out.stop() // memberlist's goroutines may still log a moment after Shutdown
		if err != nil {
			t.Errorf("run: %v", err)
		}
	})

	// The scheduler's side: one kept-alive HTTP/2 connection.
	sched, err := mtls.Load(mtls.Files{Cert: schedCert, Key: schedKey, CA: pki.CAFile, CRL: crl})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: mtls.ForServer(sched.ClientConfig(wire.RoleAgent), "ws-1"), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	var conns atomic.Int32
	healthErr := func() error {
		req, _ := http.NewRequest(http.MethodGet, "https://"+cfg.Listen+wire.PathHealth, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if !i.Reused {
					conns.Add(1)
				}
			},
		}))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	}
	testutil.Eventually(t, 15*time.Second, "agent answers", func() bool { return healthErr() == nil })

	t.Run("certificate replaced", func(t *testing.T) {
		id, err := mtls.Load(mtls.Files{Cert: schedCert, Key: schedKey, CA: pki.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		served := func() string {
			conn, err := tls.Dial("tcp", cfg.Listen, mtls.ForServer(id.ClientConfig(wire.RoleAgent), "ws-1"))
			if err != nil {
				return err.Error()
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
		}
		before := served()
		pki.Issue("ws-1", wire.RoleAgent, true, "ws-1", "127.0.0.1")
		start := time.Now()
		testutil.Eventually(t, 5*time.Second, "the new certificate served", func() bool { s := served(); return s != before && len(s) < 40 })
		t.Logf("new certificate served %s after the files changed", time.Since(start).Round(time.Millisecond))
	})

	t.Run("scheduler revoked on an open connection", func(t *testing.T) {
		if err := healthErr(); err != nil { // the connection is open
			t.Fatal(err)
		}
		opened := conns.Load()
		pki.WriteCRL(crl, schedCert)
		start := time.Now()
		var err error
		testutil.Eventually(t, 5*time.Second, "the next request refused", func() bool {
			err = healthErr()
			return err != nil
		})
		if !strings.HasPrefix(err.Error(), "403 ") || !strings.Contains(err.Error(), "certificate revoked") {
			t.Fatalf("err = %v, want the agent's 403 certificate revoked", err)
		}
		if conns.Load() != opened {
			t.Fatalf("%d new connections: want the refusal on the open one", conns.Load()-opened)
		}
		t.Logf("refused %s after the revocation: %v", time.Since(start).Round(time.Millisecond), err)
		pki.WriteCRL(crl)
		testutil.Eventually(t, 5*time.Second, "accepted again once un-revoked", func() bool { return healthErr() == nil })
	})

	t.Run("gossip keyring rotation", func(t *testing.T) {
		// joins reports whether a fresh member holding keys (primary first)
		// gets through a push-pull with the agent: the agent must decrypt
		// the primary, and the member decrypt the agent's answer.
		n := 0
		joins := func(keys ...[]byte) bool {
			n++
			name := fmt.Sprintf("probe-%d", n)
			p, err := gossip.New(gossip.Config{Name: name, BindAddr: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
				Keys: keys, Label: "berth-test", Fast: true}, wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: name}, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Shutdown()
			_, err = p.Join([]string{cfg.GossipBind})
			return err == nil
		}
		steps := []struct {
			name string
			file [][]byte
			// a member that gets in only once the agent has the step, and
			// one that is out from then on
			in, out [][]byte
		}{
			{"add", [][]byte{k1, k2}, [][]byte{k2, k1}, nil},
			{"use", [][]byte{k2, k1}, [][]byte{k2}, nil},
			{"remove", [][]byte{k2}, [][]byte{k2}, [][]byte{k1}},
		}
		for _, s := range steps {
			if s.name == "add" && joins(s.in...) {
				t.Fatalf("%s: a member encrypting with the new key got in before the agent had it", s.name)
			}
			writeKeys(t, keyFile, s.file...)
			testutil.Eventually(t, 5*time.Second, s.name+": the agent follows the key file", func() bool { return joins(s.in...) })
			if s.out != nil && joins(s.out...) {
				t.Errorf("%s: a member with only the removed key got in", s.name)
			}
		}
	})
	if err := healthErr(); err != nil {
		t.Errorf("after everything: %v", err)
	}
}

// writeKeys rewrites the key file in place, as pki.sh does.
func writeKeys(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	var s string
	for _, k := range keys {
		s += base64.StdEncoding.EncodeToString(k) + "\n"
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends log lines to t.Log until stop.
type testWriter struct {
	t       *testing.T
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
