package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/config"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// benchApp is the whole scheduler (registry file, placement, orchestrator,
// compute API over real HTTP) in front of n in-process agents (the real
// agent API over an in-memory Docker, agenttest) reached over real mTLS.
// opts change the configuration before the scheduler is built.
func benchApp(b testing.TB, n int, opts ...func(*config.Config)) (*httptest.Server, *App) {
	b.Helper()
	pki := testutil.NewPKI(b)
	var seeds []map[string]any
	for i := range n {
		id := fmt.Sprintf("ws-%02d", i)
		a := agenttest.Start(b, pki, id)
		host, port, _ := net.SplitHostPort(a.Addr())
		p, _ := strconv.Atoi(port)
		seeds = append(seeds, map[string]any{"id": id, "hostname": id, "ip_address": host, "agent_port": p,
			"architecture": "amd64", "total_cpu": 1e6, "total_memory_mb": 1e9, "total_disk_gb": 1e9, "total_bandwidth_mbps": 1e9})
	}
	raw, _ := json.Marshal(seeds)
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = cert, key, pki.CAFile
	cfg.ServiceToken = "bench-token"
	cfg.WorkspaceServers = string(raw)
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, hclog.NewNullLogger())
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); a.Close() })
	a.Background(ctx)
	testutil.Eventually(b, 10*time.Second, "all agents healthy", func() bool {
		for i := range n {
			if h, ok := a.tracker.Health(fmt.Sprintf("ws-%02d", i)); !ok || h != "healthy" {
				return false
			}
		}
		return true
	})
	srv := httptest.NewServer(a.Handler())
	b.Cleanup(srv.Close)
	return srv, a
}

var benchSeq atomic.Int64

// postWorkspace creates a workspace through the API and fails tb if that
// does not answer 201.
func postWorkspace(tb testing.TB, url string) {
	tb.Helper()
	if err := createWorkspace(url); err != nil {
		tb.Fatal(err)
	}
}

// createWorkspace is postWorkspace for goroutines that may not call Fatal
// (RunParallel's).
func createWorkspace(url string) error {
	body, _ := json.Marshal(map[string]any{"session_id": "s", "workspace_id": fmt.Sprintf("bench-%d", benchSeq.Add(1)), "config": map[string]any{"tier": "starter"}})
	req, _ := http.NewRequest(http.MethodPost, url+"/workspaces", bytes.NewReader(body))
	req.Header.Set("X-Internal-Service-Token", "bench-token")
	req.Header.Set("X-User-ID", "bench-user")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("create: got %d %s, want 201", resp.StatusCode, msg)
	}
	return nil
}

// BenchmarkCreate measures durable creates through the HTTP API against
// in-process agents (http_api), next to the bare durable registry insert it is
// built on (registry_insert), measured in the same run: the ratio of the
// two is the cost of everything berth adds around the one fsync'd
// transaction (placement, agent round trip over mTLS, second write, HTTP).
func BenchmarkCreate(b *testing.B) {
	b.Run("registry_insert", func(b *testing.B) {
		db, err := registry.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		ctx := context.Background()
		for i := range 10 {
			db.CreateServer(ctx, registry.Server{ID: fmt.Sprintf("ws-%02d", i), Hostname: "h", AgentPort: 1})
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			_, err := db.ReserveAndInsert(ctx, registry.Workspace{ID: fmt.Sprintf("w%d", i), UserID: "u", SessionID: "s",
				Status: fleet.StatusCreating, ServerID: fmt.Sprintf("ws-%02d", i%10),
				Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}}, registry.Credentials{}, registry.Limits{})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
	b.Run("http_api", func(b *testing.B) {
		srv, _ := benchApp(b, 10)
		for b.Loop() {
			postWorkspace(b, srv.URL)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
	b.Run("http_api_parallel", func(b *testing.B) {
		srv, _ := benchApp(b, 10)
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := createWorkspace(srv.URL); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
}
