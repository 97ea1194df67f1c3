package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/config"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// haScheduler is one scheduler of an HA test: the whole app, served on a
// real listener, with its raft node.
type haScheduler struct {
	id, url, raftAddr, dir string
	app                    *App
	stop                   func()
}

// startHA starts scheduler id with base's configuration, bound on raftBind.
func startHA(t *testing.T, pki *testutil.PKI, base config.Config, id, dir, raftBind string, edit func(*config.Config)) *haScheduler {
	t.Helper()
	cert, key := pki.Issue(id, wire.RoleScheduler, true, "127.0.0.1")
	cfg := base
	cfg.DataDir = dir
	cfg.TLSCert, cfg.TLSKey = cert, key
	cfg.NodeID, cfg.RaftBind, cfg.RaftTimeout, cfg.LeaderWait = id, raftBind, 200*time.Millisecond, 3*time.Second
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, hclog.NewNullLogger())
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", id, err)
	}
	a.Background(ctx)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, l, nil) }()
	s := &haScheduler{id: id, url: "http://" + l.Addr().String(), raftAddr: a.node.Addr(), dir: dir, app: a}
	var stopped bool
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-served
		_ = a.Close()
	}
	t.Cleanup(s.stop)
	return s
}

// haCall sends a request with the service token (and the admin token) and
// returns the status and body.
func haCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Internal-Service-Token", "bench-token")
	req.Header.Set("X-User-ID", "u")
	req.Header.Set("X-Admin-Token", "admin-token-for-tests")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestHighAvailability runs three whole schedulers with raft in front of
// two agents: the first bootstraps, the others join; a workspace created
// through a follower is made by the leader and read through the other;
// each answers its own raft view; the leader is stopped, and creates go on
// through the same follower after an election, every earlier workspace
// still there; the stopped one restarts from its disk and follows again.
func TestHighAvailability(t *testing.T) {
	pki := testutil.NewPKI(t)
	var seeds []map[string]any
	for i := range 2 {
		id := fmt.Sprintf("ws-%02d", i)
		ag := agenttest.Start(t, pki, id)
		host, port, _ := net.SplitHostPort(ag.Addr())
		p, _ := strconv.Atoi(port)
		seeds = append(seeds, map[string]any{"id": id, "hostname": id, "ip_address": host, "agent_port": p,
			"architecture": "amd64", "total_cpu": 64, "total_memory_mb": 1 << 20, "total_disk_gb": 1 << 20, "total_bandwidth_mbps": 1 << 20})
	}
	raw, _ := json.Marshal(seeds)
	base := config.Default()
	base.TLSCA = pki.CAFile
	base.ServiceToken, base.AdminToken = "bench-token", "admin-token-for-tests"
	base.WorkspaceServers = string(raw)

	s1 := startHA(t, pki, base, "sched-1", t.TempDir(), "127.0.0.1:0", func(c *config.Config) { c.RaftBootstrap = true })
	s2 := startHA(t, pki, base, "sched-2", t.TempDir(), "127.0.0.1:0", func(c *config.Config) { c.RaftJoin = s1.raftAddr })
	s3 := startHA(t, pki, base, "sched-3", t.TempDir(), "127.0.0.1:0", func(c *config.Config) { c.RaftJoin = s2.raftAddr })

	create := func(via *haScheduler, id string) (int, string) {
		return haCall(t, "POST", via.url+"/workspaces", fmt.Sprintf(`{"session_id":"s","workspace_id":%q,"config":{"tier":"starter"}}`, id))
	}
	// The seeded agents become healthy on the leader; then a create through
	// a follower is placed and started there.
	testutil.Eventually(t, 20*time.Second, "a create through sched-3", func() bool {
		code, _ := create(s3, "w1")
		return code == http.StatusCreated
	})
	code, body := haCall(t, "GET", s2.url+"/workspaces/w1", "")
	if code != 200 || !strings.Contains(body, `"status":"running"`) {
		t.Fatalf("GET w1 through sched-2: %d %s", code, body)
	}

	view := func(s *haScheduler, path string) map[string]any {
		code, body := haCall(t, "GET", s.url+path, "")
		if code != 200 {
			t.Fatalf("GET %s on %s: %d %s", path, s.id, code, body)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := view(s2, "/admin/cluster/raft"); v["id"] != "sched-2" || v["state"] != "Follower" || v["leader_id"] != "sched-1" || len(v["members"].([]any)) != 3 {
		t.Errorf("sched-2's own raft view: %v", v)
	}
	if v := view(s3, "/admin/cluster"); v["raft"].(map[string]any)["state"] != "Leader" {
		t.Errorf("/admin/cluster through sched-3 is not the leader's: %v", v["raft"])
	}
	// Each scheduler's /metrics is its own.
	_, metrics := haCall(t, "GET", s3.url+"/metrics", "")
	for _, want := range []string{`berth_raft_state{state="Follower"} 1`, `berth_raft_leader{id="sched-1"} 1`, "berth_raft_voters 3"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("sched-3's /metrics lacks %s", want)
		}
	}

	// The leader goes; creates through sched-2 resume after an election.
	s1.stop()
	lost := time.Now()
	var first time.Duration
	for i := range 5 {
		id := fmt.Sprintf("after-%d", i)
		testutil.Eventually(t, 20*time.Second, "a create after the leader's loss", func() bool {
			code, body := create(s2, id)
			if code != http.StatusCreated && code != http.StatusServiceUnavailable {
				t.Errorf("create %s: %d %s", id, code, body)
			}
			return code == http.StatusCreated
		})
		if i == 0 {
			first = time.Since(lost)
		}
	}
	t.Logf("first 201 through a follower %s after the leader stopped", first.Round(time.Millisecond))
	for _, id := range []string{"w1", "after-0", "after-4"} {
		if code, body := haCall(t, "GET", s3.url+"/workspaces/"+id, ""); code != 200 {
			t.Errorf("GET %s through sched-3: %d %s", id, code, body)
		}
	}

	// Membership through the admin API of a follower (forwarded to the
	// leader): sched-1, stopped, is removed; it is added again before it
	// comes back.
	members := func() int { return len(view(s3, "/admin/cluster/raft")["members"].([]any)) }
	if code, body := haCall(t, "DELETE", s3.url+"/admin/cluster/raft/members/sched-1", ""); code != http.StatusNoContent {
		t.Fatalf("remove sched-1: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "two members", func() bool { return members() == 2 })
	if code, body := haCall(t, "POST", s3.url+"/admin/cluster/raft/members", fmt.Sprintf(`{"id":"sched-1","addr":%q}`, s1.raftAddr)); code != http.StatusNoContent {
		t.Fatalf("add sched-1: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "three members", func() bool { return members() == 3 })

	// The stopped one comes back on its disk and address and follows.
	back := startHA(t, pki, base, "sched-1", s1.dir, s1.raftAddr, nil)
	testutil.Eventually(t, 20*time.Second, "sched-1 back as a follower with every workspace", func() bool {
		v := view(back, "/admin/cluster/raft")
		if v["state"] != "Follower" {
			return false
		}
		_, err := back.app.db.GetWorkspace(context.Background(), "after-4")
		return err == nil
	})
}

// TestAloneLeavesTheCluster: a raft member's data started without
// BERTH_NODE_ID leaves the cluster (raft state moved aside, the file's
// cluster id cleared: it writes without raft now), and can bootstrap a new
// cluster afterwards.
func TestAloneLeavesTheCluster(t *testing.T) {
	pki := testutil.NewPKI(t)
	base := config.Default()
	base.TLSCA = pki.CAFile
	base.ServiceToken, base.AdminToken = "bench-token", "admin-token-for-tests"
	dir := t.TempDir()
	s := startHA(t, pki, base, "sched-1", dir, "127.0.0.1:0", func(c *config.Config) { c.RaftBootstrap = true })
	for i := range 10 { // entries, so that the first cluster's applied index is past the second's first ones
		testutil.Eventually(t, 10*time.Second, "a write", func() bool {
			_, err := s.app.db.CreateServer(context.Background(), registry.Server{ID: fmt.Sprintf("first-%d", i)})
			return err == nil
		})
	}
	s.stop()

	alone := base
	alone.DataDir = dir
	alone.TLSCert, alone.TLSKey = pki.Issue("alone", wire.RoleScheduler, false)
	a, err := New(context.Background(), alone, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raft state still in place after a start alone: %v", err)
	}
	moved, _ := filepath.Glob(filepath.Join(dir, "raft.left-*"))
	if len(moved) != 1 {
		t.Errorf("raft state moved to %v, want one raft.left-* directory", moved)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	again := startHA(t, pki, base, "sched-1", dir, "127.0.0.1:0", func(c *config.Config) { c.RaftBootstrap = true })
	testutil.Eventually(t, 10*time.Second, "a write in a new cluster", func() bool {
		_, err := again.app.db.CreateServer(context.Background(), registry.Server{ID: "second"})
		return err == nil
	})
	if _, err := again.app.db.GetServer(context.Background(), "second"); err != nil {
		t.Errorf("the new cluster's write is not in the registry: %v", err)
	}
}
