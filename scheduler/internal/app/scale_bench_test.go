package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/config"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// benchEnv is the integer in the environment variable name, or def.
func benchEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkCreateAtScale measures durable creates through the HTTP API with
// a fleet of realistic size in the registry: BERTH_BENCH_SERVERS servers
// (10,000) holding BERTH_BENCH_WORKSPACES workspaces (100,000), served by
// agents in another process (TestBenchFleetAgents) over real mTLS, one
// connection per server (each agent's certificate names a thousand of the
// servers), at 1, 10, 100 and 1,000 concurrent clients,
// with p50 and p99 latency. bare_commit, measured in the same run on the
// same file system, is the cheapest durable write: one row, one
// transaction, one fsync, one after the other. The scheduler's background
// loops (health probes, event streams, reconciliation) are not running:
// the servers are registered healthy, and this measures the create path.
func BenchmarkCreateAtScale(b *testing.B) {
	servers := benchEnv("BERTH_BENCH_SERVERS", 10_000)
	workspaces := benchEnv("BERTH_BENCH_WORKSPACES", 100_000)
	b.Run("bare_commit", func(b *testing.B) {
		db, err := registry.Open(context.Background(), filepath.Join(b.TempDir(), "bare.db"), hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			if _, err := db.AddEvent(context.Background(), registry.Event{Kind: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	srv := scaleApp(b, servers, workspaces)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2000, MaxIdleConns: 2000}}
	for _, clients := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("http_api/clients=%d", clients), func(b *testing.B) {
			var next atomic.Int64
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			// BERTH_BENCH_CPUPROFILE=file profiles the creates alone (not the
			// fill, not the connections' handshakes).
			if path := os.Getenv("BERTH_BENCH_CPUPROFILE"); path != "" {
				f, err := os.Create(fmt.Sprintf("%s.clients-%d", path, clients))
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			b.ResetTimer()
			for c := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						if err := createWith(client, srv.URL); err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(start))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// createWith is createWorkspace through client.
func createWith(client *http.Client, url string) error {
	body, _ := json.Marshal(map[string]any{"session_id": "s", "workspace_id": fmt.Sprintf("bench-%d", benchSeq.Add(1)), "config": map[string]any{"tier": "starter"}})
	req, _ := http.NewRequest(http.MethodPost, url+"/workspaces", bytes.NewReader(body))
	req.Header.Set("X-Internal-Service-Token", "bench-token")
	req.Header.Set("X-User-ID", "bench-user")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create: got %d %s, want 201", resp.StatusCode, msg)
	}
	return nil
}

// scaleApp is a scheduler whose registry holds servers servers (healthy,
// active, 64 cores and 256 GiB each) and workspaces workspaces spread over
// them, in front of one in-process agent per thousand servers, with an
// mTLS connection open to every server's agent. It reports how long the
// registry took to fill and the scheduler to start (open the registry,
// build the fleet view).
func scaleApp(b *testing.B, servers, workspaces int) *httptest.Server {
	b.Helper()
	ctx := context.Background()
	pki := testutil.NewPKI(b)
	ids := make([]string, servers)
	for i := range ids {
		ids[i] = fmt.Sprintf("srv-%05d", i)
	}
	ports := startFleetAgents(b, pki, ids)
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = cert, key, pki.CAFile
	cfg.ServiceToken = "bench-token"

	// Fill the registry as a running fleet would have it, many writers at
	// once (they share commits).
	start := time.Now()
	db, err := registry.Open(ctx, cfg.DBPath(), hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	parallel(b, servers, func(i int) error {
		id := ids[i]
		if _, err := db.CreateServer(ctx, registry.Server{ID: id, Hostname: id, IPAddress: "127.0.0.1", AgentPort: ports[id],
			Architecture: "amd64", Region: []string{"eu", "us"}[i%2], TotalCPU: 64, TotalMemoryMB: 262144,
			TotalDiskGB: 4000, TotalBandwidthMbps: 10000}); err != nil {
			return err
		}
		_, err := db.SetServerHealth(ctx, id, fleet.HealthHealthy, "", time.Now())
		return err
	})
	parallel(b, workspaces, func(i int) error {
		_, err := db.ReserveAndInsert(ctx, registry.Workspace{ID: fmt.Sprintf("seed-%06d", i), UserID: "u", SessionID: "s",
			Tier: "starter", ServerID: ids[i%servers], Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}},
			registry.Credentials{}, registry.Limits{})
		return err
	})
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("registry filled with %d servers and %d workspaces in %v", servers, workspaces, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	appCtx, cancel := context.WithCancel(ctx)
	a, err := New(appCtx, cfg, hclog.NewNullLogger())
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); a.Close() })
	if _, err := a.orch.Snapshot(ctx); err != nil { // builds the fleet view
		b.Fatal(err)
	}
	b.Logf("scheduler started (registry open, fleet view built) in %v", time.Since(start).Round(time.Millisecond))
	fmt.Printf("BenchmarkCreateAtScale/startup 1 %d ns/op\n", time.Since(start).Nanoseconds())

	// Open the connection to every agent, as a running scheduler has them.
	parallel(b, servers, func(i int) error {
		_, err := a.orch.Placer.Agents.Client(ids[i], net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[ids[i]]))).Health(ctx)
		return err
	})
	srv := httptest.NewServer(a.Handler())
	b.Cleanup(srv.Close)
	return srv
}

// fleetGroup is the ids one agent of the agents process answers for, and
// its certificate.
type fleetGroup struct {
	IDs   []string   `json:"ids"`
	Files mtls.Files `json:"files"`
}

// startFleetAgents starts the agents of ids in another process (this test
// binary running TestBenchFleetAgents), a thousand servers to an agent, and
// returns each server's agent port. A process has at most 20,000 open files
// here: the scheduler's 10,000 connections and the agents' 10,000 do not
// fit in one. The process ends with the benchmark.
func startFleetAgents(b *testing.B, pki *testutil.PKI, ids []string) map[string]int {
	b.Helper()
	var groups []fleetGroup
	for lo := 0; lo < len(ids); lo += 1000 {
		g := ids[lo:min(lo+1000, len(ids))]
		groups = append(groups, fleetGroup{IDs: g, Files: agenttest.FleetCert(pki, g)})
	}
	plan := filepath.Join(b.TempDir(), "fleet.json")
	raw, _ := json.Marshal(groups)
	if err := os.WriteFile(plan, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchFleetAgents$", "-test.v")
	cmd.Env = append(os.Environ(), "BERTH_BENCH_FLEET="+plan)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		addrs, ok := strings.CutPrefix(sc.Text(), "FLEET ")
		if !ok {
			continue
		}
		var list []string
		if err := json.Unmarshal([]byte(addrs), &list); err != nil || len(list) != len(groups) {
			b.Fatalf("agents process answered %q", addrs)
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		ports := map[string]int{}
		for i, g := range groups {
			_, port, _ := net.SplitHostPort(list[i])
			p, _ := strconv.Atoi(port)
			for _, id := range g.IDs {
				ports[id] = p
			}
		}
		return ports
	}
	b.Fatalf("agents process ended: %v", sc.Err())
	return nil
}

// TestBenchFleetAgents is not a test: it is the agents process of
// BenchmarkCreateAtScale (startFleetAgents), skipped otherwise. It serves
// until its input closes.
func TestBenchFleetAgents(t *testing.T) {
	plan := os.Getenv("BERTH_BENCH_FLEET")
	if plan == "" {
		t.Skip("the agents process of BenchmarkCreateAtScale")
	}
	raw, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	var groups []fleetGroup
	if err := json.Unmarshal(raw, &groups); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, g := range groups {
		addrs = append(addrs, agenttest.StartFleet(t, g.Files, g.IDs).Addr())
	}
	out, _ := json.Marshal(addrs)
	fmt.Printf("FLEET %s\n", out)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// parallel runs fn(0..n-1) on 64 goroutines and fails b on the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					failed.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}
