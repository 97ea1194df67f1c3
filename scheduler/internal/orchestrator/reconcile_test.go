package orchestrator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

type downView map[string]time.Time

func (d downView) DownSince(id string) (time.Time, bool) { t, ok := d[id]; return t, ok }

// fakeContainer puts a berth container on a fake agent, as a create that
// the scheduler never recorded would leave it.
func (r *rig) fakeContainer(t *testing.T, server, workspaceID string, epoch int64) wire.Container {
	t.Helper()
	c, err := r.client(server).Create(context.Background(), wire.CreateContainerRequest{
		Name: "workspace-" + workspaceID, Image: "img", Start: true, WorkspaceID: workspaceID, Epoch: epoch,
		Labels: map[string]string{wire.LabelCluster: "berth"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(t *testing.T, r *rig, id string) (fleet.Status, string) {
	t.Helper()
	ws, err := r.db.GetWorkspace(context.Background(), id)
	if err != nil {
		return "", err.Error()
	}
	return ws.Status, ws.StatusReason
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	t.Run("interrupted create is adopted from labels", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		if err := r.db.ReserveAndInsert(ctx, registry.Workspace{ID: "w1", UserID: "u", SessionID: "s", Status: fleet.StatusCreating, ServerID: "ws-1"}, registry.Limits{}); err != nil {
			t.Fatal(err)
		}
		c := r.fakeContainer(t, "ws-1", "w1", 1)
		r.orch.ReconcileServer(ctx, "ws-1")
		ws, _ := r.db.GetWorkspace(ctx, "w1")
		if ws.Status != fleet.StatusRunning || ws.ContainerID != c.ID {
			t.Errorf("after reconcile: %s %s, want running with container %s", ws.Status, ws.ContainerID, c.ID)
		}
	})
	t.Run("interrupted create without container is dropped", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		r.db.ReserveAndInsert(ctx, registry.Workspace{ID: "w1", UserID: "u", SessionID: "s", Status: fleet.StatusCreating, ServerID: "ws-1"}, registry.Limits{})
		r.orch.ReconcileServer(ctx, "ws-1")
		if got, _ := status(t, r, "w1"); got != "" {
			t.Errorf("status = %q, want the never-acknowledged row gone", got)
		}
	})
	t.Run("vanished container turns error", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		ws, _ := r.orch.Create(ctx, createReq("w1", "u1"))
		r.client("ws-1").Remove(ctx, ws.ContainerID, true)
		r.orch.ReconcileServer(ctx, "ws-1")
		if got, reason := status(t, r, "w1"); got != fleet.StatusError || reason != "container vanished from its server" {
			t.Errorf("status = %s (%s), want error: container vanished", got, reason)
		}
	})
	t.Run("orphan is stopped at once and removed after the grace", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		r.orch.SetReconcile(orchestrator.ReconcileOptions{Interval: time.Second, OrphanGrace: time.Hour, LostGrace: time.Hour}, nil, nil)
		c := r.fakeContainer(t, "ws-1", "ghost", 1)
		r.orch.ReconcileServer(ctx, "ws-1")
		got, _ := r.client("ws-1").Inspect(ctx, c.ID)
		if got.State != "exited" {
			t.Errorf("orphan state = %q, want stopped at once", got.State)
		}
		r.orch.SetReconcile(orchestrator.ReconcileOptions{Interval: time.Second, OrphanGrace: 0, LostGrace: time.Hour}, nil, nil)
		r.orch.ReconcileServer(ctx, "ws-1")
		if n := len(r.agents["ws-1"].Containers()); n != 0 {
			t.Errorf("containers = %d, want the orphan removed after the grace", n)
		}
		if len(r.agents["ws-1"].RemovedData()) != 0 {
			t.Error("orphan removal touched data")
		}
	})
	t.Run("containers of another cluster are never touched", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		r.orch.SetReconcile(orchestrator.ReconcileOptions{Interval: time.Second, OrphanGrace: 0, LostGrace: time.Hour}, nil, nil)
		c, _ := r.client("ws-1").Create(ctx, wire.CreateContainerRequest{Name: "other", Image: "img", Start: true, WorkspaceID: "x",
			Labels: map[string]string{wire.LabelCluster: "someone-else"}})
		r.orch.ReconcileServer(ctx, "ws-1")
		if got, err := r.client("ws-1").Inspect(ctx, c.ID); err != nil || got.State != "running" {
			t.Errorf("foreign container: %v %s, want left running", err, got.State)
		}
	})
}

func TestContainerEvents(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		action     string
		start      fleet.Status
		wantStatus fleet.Status
	}{
		{"die", fleet.StatusRunning, fleet.StatusStopped},
		{"oom", fleet.StatusRunning, fleet.StatusRunning}, // a process, not the workspace
		{"destroy", fleet.StatusRunning, fleet.StatusError},
		{"start", fleet.StatusStopped, fleet.StatusRunning},
		{"die", fleet.StatusPendingDeletion, fleet.StatusPendingDeletion},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s on %s", tt.action, tt.start), func(t *testing.T) {
			r := newRig(t, 4, "ws-1")
			ws, _ := r.orch.Create(ctx, createReq("w1", "u1"))
			r.db.SetWorkspaceStatus(ctx, "w1", tt.start, "")
			if tt.action == "die" { // as Docker has it when it sends die
				r.client("ws-1").Stop(ctx, ws.ContainerID, time.Second)
			}
			r.orch.ContainerEvent(ctx, "ws-1", wire.ContainerEvent{ContainerID: ws.ContainerID, WorkspaceID: "w1", Action: tt.action,
				ExitCode: 137, Labels: map[string]string{wire.LabelCluster: "berth"}})
			if got, _ := status(t, r, "w1"); got != tt.wantStatus {
				t.Errorf("status = %s, want %s", got, tt.wantStatus)
			}
		})
	}
}

// A server down past the grace loses its workspaces; a restart re-places
// them on a healthy server with a new home, and says so.
func TestServerLostAndReplaced(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	lost := ws.ServerID
	other := map[string]string{"ws-1": "ws-2", "ws-2": "ws-1"}[lost]
	r.orch.SetReconcile(orchestrator.ReconcileOptions{Interval: time.Second, OrphanGrace: time.Hour, LostGrace: time.Second},
		downView{lost: time.Now().Add(-time.Minute)}, nil)
	r.agents[lost].Down.Store(true)
	r.orch.ReconcileOnce(ctx)
	if got, reason := status(t, r, "w1"); got != fleet.StatusError || reason != orchestrator.ReasonServerLost {
		t.Fatalf("status = %s (%s), want error/server_lost", got, reason)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if ws.ServerID != other || ws.Status != fleet.StatusRunning || ws.Metadata["home_reset"] != true || ws.Epoch <= 0 {
		t.Errorf("after restart: server %s status %s metadata %v, want running on %s with home_reset", ws.ServerID, ws.Status, ws.Metadata, other)
	}
	usage, _ := r.db.ServerUsage(ctx)
	if usage[lost].Workspaces != 0 || usage[other].Workspaces != 1 {
		t.Errorf("usage = %+v, want the reservation moved", usage)
	}
	// The lost server comes back with the old container still running: it is stopped.
	r.agents[lost].Down.Store(false)
	r.orch.SetReconcile(orchestrator.ReconcileOptions{Interval: time.Second, OrphanGrace: time.Hour, LostGrace: time.Hour}, downView{}, nil)
	r.orch.ReconcileOnce(ctx)
	for _, c := range r.agents[lost].Containers() {
		if c.State == "running" {
			t.Errorf("stale container %s still runs on %s", c.Name, lost)
		}
	}
}

// A draining server takes no new workspaces, and its workspaces move at
// their next restart.
func TestDrainingServerMovesAtRestart(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	from := ws.ServerID
	to := map[string]string{"ws-1": "ws-2", "ws-2": "ws-1"}[from]
	draining := fleet.StateDraining
	if _, err := r.db.UpdateServer(ctx, from, registry.ServerPatch{State: &draining}); err != nil {
		t.Fatal(err)
	}
	if next, err := r.orch.Create(ctx, createReq("w2", "u1")); err != nil || next.ServerID != to {
		t.Errorf("new workspace while %s drains: %v on %s, want %s", from, err, next.ServerID, to)
	}
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if ws.ServerID != to || ws.Status != fleet.StatusRunning || ws.Metadata["previous_server_id"] != from {
		t.Errorf("after restart: on %s (%s), metadata %v; want moved to %s", ws.ServerID, ws.Status, ws.Metadata, to)
	}
	if n := len(r.agents[from].Containers()); n != 0 {
		t.Errorf("%d containers left on the drained server, want the old one removed", n)
	}
}
