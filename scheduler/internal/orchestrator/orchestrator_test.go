package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

func TestCreateRunsContainerWithLabelsAndEnv(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	creates := captureCreates(t, r.agents["ws-1"])
	ws, err := r.orch.Create(context.Background(), createReq("w1", "u1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if ws.Status != fleet.StatusRunning || ws.ServerID != "ws-1" || ws.ContainerID == "" || ws.Epoch != 1 || ws.AcknowledgedAt.IsZero() {
		t.Fatalf("workspace = %+v, want running and acknowledged on ws-1 with a container and epoch 1", ws)
	}
	cs := r.agents["ws-1"].Containers()
	if len(cs) != 1 {
		t.Fatalf("containers on agent: got %d, want 1", len(cs))
	}
	c := cs[0]
	for k, want := range map[string]string{wire.LabelWorkspaceID: "w1", wire.LabelUserID: "u1", wire.LabelSessionID: "s1",
		wire.LabelTier: "starter", wire.LabelEpoch: "1", wire.LabelCluster: "berth"} {
		if c.Labels[k] != want {
			t.Errorf("label %s: got %q, want %q", k, c.Labels[k], want)
		}
	}
	if c.ID != ws.ContainerID || c.State != "running" || c.Name != "workspace-w1" || c.Image != "berth/workspace:dev" ||
		c.Resources != (wire.Resources{CPU: 2, MemoryMB: 4096}) {
		t.Errorf("container: got %+v, want %s running as workspace-w1 of berth/workspace:dev with 2 CPU / 4096 MB", c, ws.ContainerID)
	}
	reqs := creates()
	if len(reqs) != 1 {
		t.Fatalf("creates sent: got %d, want 1", len(reqs))
	}
	wantEnv := map[string]string{"WORKSPACE_ID": "w1", "USER_ID": "u1", "SESSION_ID": "s1", "WORKSPACE_TIER": "starter",
		"GITHUB_TOKEN": "t0k"} // no GIT_*: the git setup does that work (credentials_test.go)
	if d := cmp.Diff(wantEnv, reqs[0].Env); d != "" {
		t.Errorf("container env (-want +got):\n%s", d)
	}
	// A new id's home starts empty, whatever a forgotten workspace left;
	// its size is the tier's storage.
	if want := []wire.Mount{{Source: "workspaces/w1/home", Target: "/home/dev", Fresh: true, QuotaGB: 20}}; !cmp.Equal(want, reqs[0].Mounts) {
		t.Errorf("mounts: got %+v, want %+v", reqs[0].Mounts, want)
	}
	// The tier's process limits go with it; no sandbox exceptions unless configured.
	if want := (wire.ProcessLimits{Processes: 1024, OpenFiles: 65536}); reqs[0].Limits != want || reqs[0].SandboxExceptions != nil {
		t.Errorf("limits %+v, exceptions %v: want %+v and none", reqs[0].Limits, reqs[0].SandboxExceptions, want)
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
		t.Errorf("second create by owner: got %v, %v; want the same workspace (%s)", again.ContainerID, err, first.ContainerID)
	}
	if _, err := r.orch.Create(ctx, createReq("w1", "u2")); !errors.Is(err, orchestrator.ErrOwnedByOther) {
		t.Errorf("create by another user: got %v, want ErrOwnedByOther", err)
	}
	if n := len(r.agents["ws-1"].Containers()); n != 1 {
		t.Errorf("containers: got %d, want 1", n)
	}
}

// An agent failure releases the reservation and the next candidate is used.
func TestCreateFailsOverToNextCandidate(t *testing.T) {
	r := newRig(t, 4, "ws-1", "ws-2")
	r.agents["ws-1"].FailCreate(wire.CodeDocker)
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if ws.ServerID != "ws-2" {
		t.Errorf("placed on %s, want ws-2 after ws-1 failed", ws.ServerID)
	}
	usage, err := r.db.ServerUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if usage["ws-1"].Workspaces != 0 || usage["ws-2"].Workspaces != 1 {
		t.Errorf("usage: got %+v, want nothing reserved on ws-1 and one workspace on ws-2", usage)
	}
	if evs := r.events("w1"); !slices.Contains(evs, "placement.retry@ws-1") {
		t.Errorf("events: got %q, want a placement.retry on ws-1", evs)
	}
}

func TestCreateErrors(t *testing.T) {
	withConfig := func(change func(*orchestrator.WorkspaceConfig)) orchestrator.CreateRequest {
		r := createReq("w1", "u1")
		change(&r.Config)
		return r
	}
	tests := []struct {
		name    string
		servers []string
		fail    string // every agent's create answers with this code
		req     orchestrator.CreateRequest
		want    error
	}{
		{"no servers", nil, "", createReq("w1", "u1"), orchestrator.ErrNoServers},
		{"region without room", []string{"ws-1"}, "",
			withConfig(func(c *orchestrator.WorkspaceConfig) { c.Settings.RegionPreference = "eu" }),
			&orchestrator.PlacementError{Cause: placement.ErrNoRegionCapacity, Region: "eu"}},
		{"tier too big", []string{"ws-1"}, "",
			withConfig(func(c *orchestrator.WorkspaceConfig) { c.Tier = "enterprise" }),
			&orchestrator.PlacementError{Cause: placement.ErrNoCapacity}},
		{"image missing everywhere", []string{"ws-1"}, wire.CodeNoImage, createReq("w1", "u1"),
			&orchestrator.ImageMissingError{Image: "berth/workspace:dev", ServerID: "ws-1"}},
		{"start failed", []string{"ws-1"}, wire.CodeStartFailed, createReq("w1", "u1"), orchestrator.ErrStartFailed},
		{"docker failed on every server", []string{"ws-1", "ws-2"}, wire.CodeDocker, createReq("w1", "u1"), orchestrator.ErrCreateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 2, tt.servers...)
			for _, a := range r.agents {
				a.FailCreate(tt.fail)
			}
			_, err := r.orch.Create(context.Background(), tt.req)
			if !matchError(err, tt.want) {
				t.Fatalf("Create: got error %#v (%v), want %v", err, err, tt.want)
			}
			// A region failure keeps placement's *RegionError, with the region.
			var region *placement.RegionError
			gotRegion := errors.As(err, &region)
			if wantRegion := tt.req.Config.Settings.RegionPreference; gotRegion != (wantRegion != "") || (gotRegion && region.Region != wantRegion) {
				t.Errorf("RegionError in %v: got %v (%+v), want region %q", err, gotRegion, region, wantRegion)
			}
			if _, err := r.db.GetWorkspace(context.Background(), "w1"); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("a failed create left a row: got %v, want ErrNotFound", err)
			}
			usage, err := r.db.ServerUsage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for id, a := range r.agents {
				if n := len(a.Containers()); n != 0 {
					t.Errorf("%s: got %d containers after a failed create, want 0", id, n)
				}
				if u := usage[id]; u.Workspaces != 0 || u.Reserved != (fleet.Resources{}) {
					t.Errorf("%s: got usage %+v after a failed create, want none", id, u)
				}
			}
		})
	}
}

// Simultaneous creates against less room than they need: exactly the room
// is taken, no server past its capacity, and the containers match the
// registry one for one, as does the fleet view's usage.
func TestConcurrentCreatesNeverOvercommit(t *testing.T) {
	tests := []struct {
		name                   string
		servers, slots, create int
	}{
		{"50 against room for 20 on 2 servers", 2, 10, 50},
		{"1,000 against room for 500 on 100 servers", 100, 5, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.servers > 2 && testing.Short() {
				t.Skip("100 agents")
			}
			var ids []string
			for i := range tt.servers {
				ids = append(ids, fmt.Sprintf("ws-%03d", i))
			}
			r := newRig(t, tt.slots, ids...)
			// Connections first, as a running scheduler has them (as many to
			// each agent as creates will run on it at once): a thousand
			// requests racing hundreds of TLS handshakes on a loaded machine
			// (-race) time out, which is not what this test is about.
			for _, id := range ids {
				var warm sync.WaitGroup
				for range tt.slots + 1 {
					warm.Go(func() {
						if _, err := r.client(id).Health(context.Background()); err != nil {
							t.Error(err)
						}
					})
				}
				warm.Wait()
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok, full := 0, 0
			for i := range tt.create {
				wg.Go(func() {
					_, err := r.orch.Create(context.Background(), createReq(fmt.Sprintf("w%04d", i), "u1"))
					// An agent call that timed out on the loaded machine is
					// the caller's to retry, as the podex API does: the
					// reservation was released, and the count must still add up.
					for try := 0; try < 5 && errors.Is(err, orchestrator.ErrCreateFailed); try++ {
						_, err = r.orch.Create(context.Background(), createReq(fmt.Sprintf("w%04d", i), "u1"))
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, placement.ErrNoCapacity):
						full++
					default:
						t.Errorf("create %d: unexpected %v", i, err)
					}
				})
			}
			wg.Wait()
			room := tt.servers * tt.slots
			if ok != room || full != tt.create-room {
				t.Fatalf("got %d created and %d refused, want %d and %d", ok, full, room, tt.create-room)
			}
			rows, err := r.db.ListWorkspaces(context.Background(), registry.WorkspaceFilter{})
			if err != nil {
				t.Fatal(err)
			}
			containers := map[string]bool{}
			for id, a := range r.agents {
				n := 0
				for _, c := range a.Containers() {
					containers[c.ID] = true
					n++
				}
				if n != tt.slots {
					t.Errorf("%s runs %d containers, want %d", id, n, tt.slots)
				}
			}
			if len(rows) != room {
				t.Errorf("registry rows: got %d, want %d", len(rows), room)
			}
			for _, w := range rows {
				if !containers[w.ContainerID] || w.Status != fleet.StatusRunning {
					t.Errorf("row %s (%s, %s) has no running container", w.ID, w.ContainerID, w.Status)
				}
			}
			snap, err := r.orch.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range snap.Nodes {
				if n.Workspaces != tt.slots || n.Reserved.CPU != float64(2*tt.slots) {
					t.Errorf("fleet view of %s: %d workspaces reserving %v cores, want %d and %d", n.ID, n.Workspaces, n.Reserved.CPU, tt.slots, 2*tt.slots)
				}
			}
		})
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
	ws, err = r.orch.Get(ctx, "w1")
	if err != nil || ws.Status != fleet.StatusStopped {
		t.Errorf("after stop: got %s, %v; want stopped", ws.Status, err)
	}
	if c, err := r.client("ws-1").Inspect(ctx, ws.ContainerID); err != nil || c.State != "exited" {
		t.Errorf("container after stop: got %q, %v; want exited", c.State, err)
	}
	if _, err := r.orch.Exec(ctx, ws, orchestrator.ExecRequest{Command: "true"}); !errors.Is(err, orchestrator.ErrNotRunning) {
		t.Errorf("exec on stopped: got %v, want ErrNotRunning", err)
	}
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, err = r.orch.Sync(ctx, ws)
	if err != nil || ws.Status != fleet.StatusRunning {
		t.Errorf("after restart: got %s, %v; want running", ws.Status, err)
	}
	res, err := r.orch.Exec(ctx, ws, orchestrator.ExecRequest{Command: "echo hi"})
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "bash -c echo hi\n" {
		t.Errorf("exec: got %+v, %v; want exit 0 with the agent's echo of the command", res, err)
	}
	if err := r.orch.MarkForDeletion(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if ws, _ = r.orch.Sync(ctx, ws); ws.Status != fleet.StatusPendingDeletion {
		t.Errorf("sync: got %s, want pending_deletion kept", ws.Status)
	}
	if n := r.orch.CleanupOnce(ctx); n != 1 {
		t.Fatalf("CleanupOnce: got %d removed, want 1", n)
	}
	if _, err := r.orch.Get(ctx, "w1"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Errorf("after cleanup Get: got %v, want ErrNotFound", err)
	}
	if n := len(r.agents["ws-1"].Containers()); n != 0 {
		t.Errorf("containers after cleanup: got %d, want 0", n)
	}
	if got, want := r.agents["ws-1"].RemovedData(), []string{"workspaces/w1"}; !cmp.Equal(got, want) {
		t.Errorf("data removed: got %q, want %q", got, want)
	}
	if evs := r.events("w1"); !slices.Contains(evs, "workspace.deleted@ws-1") {
		t.Errorf("events: got %q, want workspace.deleted", evs)
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
	if err := r.orch.MarkForDeletion(ctx, ws); err != nil {
		t.Fatal(err)
	}
	r.agents["ws-1"].SetDown(true)
	if n := r.orch.CleanupOnce(ctx); n != 0 {
		t.Errorf("cleanup with agent down: got %d removed, want 0", n)
	}
	if got, err := r.orch.Get(ctx, "w1"); err != nil || got.Status != fleet.StatusPendingDeletion {
		t.Errorf("record while agent down: got %s, %v; want kept pending_deletion", got.Status, err)
	}
	r.agents["ws-1"].SetDown(false)
	if n := r.orch.CleanupOnce(ctx); n != 1 {
		t.Errorf("cleanup after recovery: got %d removed, want 1", n)
	}
	if n := len(r.agents["ws-1"].Containers()); n != 0 {
		t.Errorf("containers after cleanup: got %d, want 0", n)
	}
}

// An exec on a server whose agent does not answer is ErrServerUnavailable.
func TestExecAgentDown(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	r.agents["ws-1"].SetDown(true)
	_, err = r.orch.Exec(ctx, ws, orchestrator.ExecRequest{Command: "true"})
	if !errors.Is(err, orchestrator.ErrServerUnavailable) || !errors.Is(err, agentclient.ErrUnavailable) {
		t.Errorf("exec with the agent down: got %v, want ErrServerUnavailable (agent unavailable)", err)
	}
}

// A GET's sync while the workspace is held (the event watcher recording
// the same change) answers the container's live status, without writing
// it; unheld, the sync saves it.
func TestSyncWhileHeldAnswersTheLiveStatus(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client("ws-1").Stop(ctx, ws.ContainerID, 0); err != nil { // behind berth's back
		t.Fatal(err)
	}
	release := r.orch.HoldLock("w1")
	got, err := r.orch.Sync(ctx, ws)
	if err != nil || got.Status != fleet.StatusStopped {
		t.Errorf("sync while held: got %s, %v; want stopped", got.Status, err)
	}
	if stored, _ := r.orch.Get(ctx, "w1"); stored.Status != fleet.StatusRunning {
		t.Errorf("record after a held sync: %s, want running (the holder writes it)", stored.Status)
	}
	release()
	if got, err = r.orch.Sync(ctx, ws); err != nil || got.Status != fleet.StatusStopped {
		t.Errorf("sync: got %s, %v; want stopped", got.Status, err)
	}
	if stored, _ := r.orch.Get(ctx, "w1"); stored.Status != fleet.StatusStopped {
		t.Errorf("record after the sync: %s, want stopped", stored.Status)
	}
}
