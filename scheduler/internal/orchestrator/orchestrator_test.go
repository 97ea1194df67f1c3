package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fakeagent"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

type allHealthy struct{}

func (allHealthy) Health(string) (fleet.Health, bool) { return fleet.HealthHealthy, true }

type rig struct {
	db     *registry.DB
	orch   *orchestrator.Orchestrator
	agents map[string]*fakeagent.Agent
	dialer *agentclient.Dialer
}

// client is an agent client of a fake agent, as the scheduler holds it.
func (r *rig) client(server string) *agentclient.Client {
	return r.dialer.Client(server, r.agents[server].Addr())
}

// newRig starts fake agents (real mTLS) for servers, each with room for
// `slots` starter workspaces (2 CPU, 4096 MB each), and an orchestrator
// over a real SQLite file.
func newRig(t *testing.T, slots int, servers ...string) *rig {
	t.Helper()
	ctx := context.Background()
	pki := testutil.NewPKI(t)
	db, err := registry.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{db: db, agents: map[string]*fakeagent.Agent{}}
	for _, id := range servers {
		a := fakeagent.Start(t, pki, id)
		r.agents[id] = a
		host, port, _ := net.SplitHostPort(a.Addr())
		p, _ := strconv.Atoi(port)
		if _, err := db.CreateServer(ctx, registry.Server{ID: id, Hostname: id, IPAddress: host, AgentPort: p,
			Architecture: "amd64", Region: "local", TotalCPU: float64(2 * slots), TotalMemoryMB: int64(4096 * slots), TotalDiskGB: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	r.dialer = dialer
	r.orch = orchestrator.New(db, dialer, nil, allHealthy{}, tiers.Builtin(), orchestrator.Options{
		Strategy: placement.Spread, ClusterID: "berth", WorkspaceImage: "berth/workspace:dev"}, hclog.NewNullLogger())
	return r
}

func createReq(id, user string) orchestrator.CreateRequest {
	return orchestrator.CreateRequest{UserID: user, SessionID: "s1", WorkspaceID: id,
		Config: orchestrator.WorkspaceConfig{Tier: "starter", Environment: map[string]string{"GITHUB_TOKEN": "t0k"}, GitName: "Ada"}}
}

func TestCreateRunsContainerWithLabelsAndEnv(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ws, err := r.orch.Create(context.Background(), createReq("w1", "u1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if ws.Status != fleet.StatusRunning || ws.ServerID != "ws-1" || ws.ContainerID == "" || ws.Epoch != 1 {
		t.Fatalf("workspace = %+v, want running on ws-1 with a container and epoch 1", ws)
	}
	cs := r.agents["ws-1"].Containers()
	if len(cs) != 1 {
		t.Fatalf("containers on agent = %d, want 1", len(cs))
	}
	c := cs[0]
	for k, want := range map[string]string{wire.LabelWorkspaceID: "w1", wire.LabelUserID: "u1", wire.LabelSessionID: "s1", wire.LabelTier: "starter", wire.LabelEpoch: "1"} {
		if c.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], want)
		}
	}
	if c.Name != "workspace-w1" || c.Image != "berth/workspace:dev" || c.Resources != (wire.Resources{CPU: 2, MemoryMB: 4096}) {
		t.Errorf("container = %+v, want workspace-w1 of berth/workspace:dev with 2 CPU / 4096 MB", c)
	}
}

func TestCreateIsIdempotentPerID(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ctx := context.Background()
	first, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil || again.ContainerID != first.ContainerID {
		t.Errorf("second create by owner = %v, %v; want the same workspace", again.ContainerID, err)
	}
	if _, err := r.orch.Create(ctx, createReq("w1", "u2")); !errors.Is(err, orchestrator.ErrOwnedByOther) {
		t.Errorf("create by another user = %v, want ErrOwnedByOther", err)
	}
	if n := len(r.agents["ws-1"].Containers()); n != 1 {
		t.Errorf("containers = %d, want 1", n)
	}
}

// An agent failure releases the reservation and the next candidate is used.
func TestCreateFailsOverToNextCandidate(t *testing.T) {
	r := newRig(t, 4, "ws-1", "ws-2")
	r.agents["ws-1"].FailCreate.Store(wire.CodeDocker)
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if ws.ServerID != "ws-2" {
		t.Errorf("placed on %s, want ws-2 after ws-1 failed", ws.ServerID)
	}
	usage, _ := r.db.ServerUsage(ctx)
	if usage["ws-1"].Workspaces != 0 || usage["ws-2"].Workspaces != 1 {
		t.Errorf("usage = %+v, want nothing reserved on ws-1", usage)
	}
	evs, _ := r.db.ListEvents(ctx, registry.EventFilter{WorkspaceID: "w1"})
	found := false
	for _, e := range evs {
		found = found || (e.Kind == "placement.retry" && e.ServerID == "ws-1")
	}
	if !found {
		t.Errorf("no placement.retry event for ws-1 in %+v", evs)
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name    string
		servers []string
		fail    string
		req     orchestrator.CreateRequest
		want    error
		detail  string
	}{
		{"no servers", nil, "", createReq("w1", "u1"), orchestrator.ErrNoServers, "No servers available for workspace creation"},
		{"region without room", []string{"ws-1"}, "", func() orchestrator.CreateRequest {
			r := createReq("w1", "u1")
			r.Config.RegionPreference = "eu"
			return r
		}(), orchestrator.ErrPlacement, "No capacity available in eu region"},
		{"tier too big", []string{"ws-1"}, "", func() orchestrator.CreateRequest {
			r := createReq("w1", "u1")
			r.Config.Tier = "enterprise"
			return r
		}(), orchestrator.ErrPlacement, "No server has sufficient resources"},
		{"image missing everywhere", []string{"ws-1"}, wire.CodeNoImage, createReq("w1", "u1"), orchestrator.ErrImageNotFound,
			"Workspace image 'berth/workspace:dev' not found on server 'ws-1'. Run 'make load-workspace-images-dind' to load workspace images into the development servers."},
		{"start failed", []string{"ws-1"}, wire.CodeStartFailed, createReq("w1", "u1"), orchestrator.ErrStartFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 2, tt.servers...)
			for _, a := range r.agents {
				a.FailCreate.Store(tt.fail)
			}
			_, err := r.orch.Create(context.Background(), tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.detail != "" && !strings.HasSuffix(err.Error(), tt.detail) {
				t.Errorf("error = %q, want it to end with the contract's detail %q", err, tt.detail)
			}
			if _, err := r.db.GetWorkspace(context.Background(), "w1"); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("a failed create left a row: %v", err)
			}
			for id, a := range r.agents {
				if n := len(a.Containers()); n != 0 {
					t.Errorf("%s has %d containers after a failed create", id, n)
				}
			}
		})
	}
}

// 50 simultaneous creates against room for 20: exactly 20 succeed, and the
// containers match the registry one for one.
func TestConcurrentCreatesNeverOvercommit(t *testing.T) {
	r := newRig(t, 10, "ws-1", "ws-2")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.orch.Create(context.Background(), createReq(fmt.Sprintf("w%02d", i), "u1"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, orchestrator.ErrPlacement):
				full++
			default:
				t.Errorf("create %d: unexpected %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok != 20 || full != 30 {
		t.Fatalf("got %d created and %d refused, want 20 and 30", ok, full)
	}
	rows, _ := r.db.ListWorkspaces(context.Background(), registry.WorkspaceFilter{})
	containers := map[string]bool{}
	for id, a := range r.agents {
		n := 0
		for _, c := range a.Containers() {
			containers[c.ID] = true
			n++
		}
		if n != 10 {
			t.Errorf("%s runs %d containers, want 10", id, n)
		}
	}
	if len(rows) != 20 {
		t.Errorf("registry rows = %d, want 20", len(rows))
	}
	for _, w := range rows {
		if !containers[w.ContainerID] || w.Status != fleet.StatusRunning {
			t.Errorf("row %s (%s) has no running container", w.ID, w.ContainerID)
		}
	}
}

func TestLifecycleAndCleanup(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.orch.Stop(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if ws.Status != fleet.StatusStopped {
		t.Errorf("after stop status = %s, want stopped", ws.Status)
	}
	if _, err := r.orch.Exec(ctx, ws, orchestrator.ExecRequest{Command: "true"}); !errors.Is(err, orchestrator.ErrNotRunning) {
		t.Errorf("exec on stopped = %v, want ErrNotRunning", err)
	}
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Sync(ctx, ws)
	if ws.Status != fleet.StatusRunning {
		t.Errorf("after restart status = %s, want running", ws.Status)
	}
	if err := r.orch.MarkForDeletion(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if ws, _ = r.orch.Sync(ctx, ws); ws.Status != fleet.StatusPendingDeletion {
		t.Errorf("sync overwrote pending_deletion with %s", ws.Status)
	}
	if n := r.orch.CleanupOnce(ctx); n != 1 {
		t.Fatalf("CleanupOnce removed %d, want 1", n)
	}
	if _, err := r.orch.Get(ctx, "w1"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Errorf("after cleanup Get = %v, want ErrNotFound", err)
	}
	if n := len(r.agents["ws-1"].Containers()); n != 0 {
		t.Errorf("containers after cleanup = %d, want 0", n)
	}
	if got := r.agents["ws-1"].RemovedData(); len(got) != 1 || got[0] != "workspaces/w1" {
		t.Errorf("data removed = %q, want [workspaces/w1]", got)
	}
}

// A workspace whose agent is down stays pending_deletion until it is back.
func TestCleanupRetriesWhenAgentDown(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	r.orch.MarkForDeletion(ctx, ws)
	r.agents["ws-1"].Down.Store(true)
	if n := r.orch.CleanupOnce(ctx); n != 0 {
		t.Errorf("cleanup with agent down removed %d", n)
	}
	if _, err := r.orch.Get(ctx, "w1"); err != nil {
		t.Errorf("record lost while agent down: %v", err)
	}
	r.agents["ws-1"].Down.Store(false)
	if n := r.orch.CleanupOnce(ctx); n != 1 {
		t.Errorf("cleanup after recovery removed %d, want 1", n)
	}
}
