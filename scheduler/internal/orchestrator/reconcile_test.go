package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// fakeContainer puts a berth container on an agent, as a create that the
// scheduler never recorded would leave it.
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

// reserveCreating records a workspace being created on server, as a
// scheduler that crashed before its agent answered leaves it.
func reserveCreating(t *testing.T, r *rig, server, id string) {
	t.Helper()
	if _, err := r.db.ReserveAndInsert(context.Background(), registry.Workspace{ID: id, UserID: "u", SessionID: "s", ServerID: server},
		registry.Credentials{}, registry.Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	t.Run("interrupted create is adopted from labels", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		reserveCreating(t, r, "ws-1", "w1")
		c := r.fakeContainer(t, "ws-1", "w1", 1)
		if err := r.orch.ReconcileServer(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		ws, err := r.db.GetWorkspace(ctx, "w1")
		if err != nil || ws.Status != fleet.StatusRunning || ws.ContainerID != c.ID {
			t.Errorf("after reconcile: got %s %s (%v), want running with container %s", ws.Status, ws.ContainerID, err, c.ID)
		}
		if evs := r.events("w1"); !slices.Contains(evs, "workspace.adopted@ws-1") {
			t.Errorf("events: got %q, want workspace.adopted", evs)
		}
	})
	t.Run("interrupted create without container is dropped", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		reserveCreating(t, r, "ws-1", "w1")
		if err := r.orch.ReconcileServer(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		if got, reason := status(t, r, "w1"); got != "" {
			t.Errorf("status: got %q (%s), want the never-acknowledged row gone", got, reason)
		}
		if evs := r.events("w1"); !slices.Contains(evs, "workspace.create_abandoned@ws-1") {
			t.Errorf("events: got %q, want workspace.create_abandoned", evs)
		}
	})
	t.Run("vanished container turns error", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.client("ws-1").Remove(ctx, ws.ContainerID, true); err != nil {
			t.Fatal(err)
		}
		if err := r.orch.ReconcileServer(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		if got, reason := status(t, r, "w1"); got != fleet.StatusError || reason != "container vanished from its server" {
			t.Errorf("status: got %s (%s), want error: container vanished from its server", got, reason)
		}
	})
	t.Run("orphan is stopped at once and removed after the grace", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		patient := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.OrphanGrace = time.Hour })
		c := r.fakeContainer(t, "ws-1", "ghost", 1)
		for pass := range 2 { // the grace holds over passes
			if err := patient.ReconcileServer(ctx, "ws-1"); err != nil {
				t.Fatal(err)
			}
			got, err := r.client("ws-1").Inspect(ctx, c.ID)
			if err != nil || got.State != "exited" {
				t.Errorf("pass %d: orphan state got %q, %v; want stopped at once and kept for the grace", pass, got.State, err)
			}
		}
		if evs := r.events("ghost"); !slices.Contains(evs, "workspace.orphan@ws-1") || slices.Contains(evs, "workspace.orphan_removed@ws-1") {
			t.Errorf("events during the grace: got %q, want workspace.orphan only", evs)
		}
		if err := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.OrphanGrace = 0 }).ReconcileServer(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		if n := len(r.agents["ws-1"].Containers()); n != 0 {
			t.Errorf("containers: got %d, want the orphan removed after the grace", n)
		}
		if got := r.agents["ws-1"].RemovedData(); len(got) != 0 {
			t.Errorf("data removed: got %q, want none (orphan removal keeps data)", got)
		}
		if evs := r.events("ghost"); !slices.Contains(evs, "workspace.orphan_removed@ws-1") {
			t.Errorf("events: got %q, want workspace.orphan_removed", evs)
		}
	})
	t.Run("containers of another cluster are never touched", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		eager := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.OrphanGrace = 0 })
		c, err := r.client("ws-1").Create(ctx, wire.CreateContainerRequest{Name: "other", Image: "img", Start: true, WorkspaceID: "x",
			Labels: map[string]string{wire.LabelCluster: "someone-else"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := eager.ReconcileServer(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		if got, err := r.client("ws-1").Inspect(ctx, c.ID); err != nil || got.State != "running" {
			t.Errorf("foreign container: got %v %s, want left running", err, got.State)
		}
	})
}

func TestContainerEvents(t *testing.T) {
	ctx := context.Background()
	stop := func(r *rig, ws registry.Workspace) error {
		return r.client("ws-1").Stop(ctx, ws.ContainerID, time.Second)
	}
	oom := func(r *rig, ws registry.Workspace) error { return r.agents["ws-1"].OOM(ws.ContainerID) }
	tests := []struct {
		action     string
		start      fleet.Status
		before     func(*rig, registry.Workspace) error // what Docker did before it sent the event
		wantStatus fleet.Status
		wantReason string
	}{
		{"die", fleet.StatusRunning, stop, fleet.StatusStopped, "container exited"},
		{"die", fleet.StatusRunning, oom, fleet.StatusError, "container was OOM-killed"},
		{"oom", fleet.StatusRunning, nil, fleet.StatusRunning, ""}, // a process, not the workspace
		{"destroy", fleet.StatusRunning, nil, fleet.StatusError, "container removed outside berth"},
		{"pause", fleet.StatusRunning, nil, fleet.StatusError, "container paused outside berth"},
		{"start", fleet.StatusStopped, nil, fleet.StatusRunning, ""},
		{"die", fleet.StatusPendingDeletion, stop, fleet.StatusPendingDeletion, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s on %s (%s)", tt.action, tt.start, tt.wantReason), func(t *testing.T) {
			r := newRig(t, 4, "ws-1")
			ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.db.SetWorkspaceStatus(ctx, "w1", tt.start, ""); err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				if err := tt.before(r, ws); err != nil {
					t.Fatal(err)
				}
			}
			r.orch.ContainerEvent(ctx, "ws-1", wire.ContainerEvent{ContainerID: ws.ContainerID, WorkspaceID: "w1", Action: tt.action,
				ExitCode: 137, Labels: map[string]string{wire.LabelCluster: "berth"}})
			if got, reason := status(t, r, "w1"); got != tt.wantStatus || reason != tt.wantReason {
				t.Errorf("status: got %s (%q), want %s (%q)", got, reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

// Events of another cluster's containers, or of a container that is not
// the one the record names, change nothing.
func TestContainerEventsIgnored(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	berth := map[string]string{wire.LabelCluster: "berth"}
	tests := []struct {
		name   string
		server string
		ev     wire.ContainerEvent
	}{
		{"other cluster", "ws-1", wire.ContainerEvent{ContainerID: ws.ContainerID, WorkspaceID: "w1", Action: "destroy",
			Labels: map[string]string{wire.LabelCluster: "someone-else"}}},
		{"other container", "ws-1", wire.ContainerEvent{ContainerID: "not-the-one", WorkspaceID: "w1", Action: "destroy", Labels: berth}},
		{"other server", "ws-9", wire.ContainerEvent{ContainerID: ws.ContainerID, WorkspaceID: "w1", Action: "destroy", Labels: berth}},
		{"no workspace", "ws-1", wire.ContainerEvent{ContainerID: ws.ContainerID, Action: "destroy", Labels: berth}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.orch.ContainerEvent(ctx, tt.server, tt.ev)
			if got, reason := status(t, r, "w1"); got != fleet.StatusRunning {
				t.Errorf("status: got %s (%s), want running", got, reason)
			}
		})
	}
}

// A server down past the grace loses its workspaces. A restart while it is
// down is refused (the home is there; starting elsewhere would start
// without the user's files); once it is back, the restart starts the
// workspace where it was, home and all. Only when an operator removes the
// server for good does the workspace start elsewhere, with an empty home.
func TestServerLostKeepsItsHome(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	lost, to := ws.ServerID, other(ws.ServerID)
	r.writeHome(lost, "w1", map[string]string{"work.txt": "mine"})
	r.down.set(lost, time.Now().Add(-orchestrator.Default().LostGrace-time.Minute))
	r.agents[lost].SetDown(true)
	r.orch.ReconcileOnce(ctx)
	if got, reason := status(t, r, "w1"); got != fleet.StatusError || reason != orchestrator.ReasonServerLost {
		t.Fatalf("status: got %s (%s), want error/server_lost", got, reason)
	}
	if notes := r.notes.all(); !slices.Contains(notes, note{"w1", fleet.StatusError, orchestrator.ReasonServerLost}) {
		t.Errorf("notifier: got %+v, want w1 server_lost", notes)
	}

	ws, _ = r.orch.Get(ctx, "w1")
	var herr *orchestrator.HomeUnavailableError
	if err := r.orch.Restart(ctx, ws); !errors.As(err, &herr) || herr.ServerID != lost {
		t.Fatalf("Restart while %s is down: %v; want HomeUnavailableError", lost, err)
	}
	if got, _ := r.orch.Get(ctx, "w1"); got.ServerID != lost || len(r.agents[to].Containers()) != 0 {
		t.Errorf("after the refused restart: on %s, %d containers on %s; want it left on %s", got.ServerID, len(r.agents[to].Containers()), to, lost)
	}

	// Back: the restart starts it where it was, with its files.
	r.agents[lost].SetDown(false)
	r.down.set(lost, time.Time{})
	ws, _ = r.orch.Get(ctx, "w1")
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatalf("Restart after %s came back: %v", lost, err)
	}
	if got, _ := r.orch.Get(ctx, "w1"); got.ServerID != lost || got.Status != fleet.StatusRunning {
		t.Errorf("after restart: %s on %s, want running on %s", got.Status, got.ServerID, lost)
	}
	if got := r.readHome(lost, "w1", "work.txt"); got["work.txt"] != "mine" {
		t.Errorf("work.txt = %q", got["work.txt"])
	}

	// Gone for good: the operator removes the server; the podex API
	// re-creates the workspace, which starts elsewhere with an empty home.
	if _, err := r.orch.EvictServer(ctx, lost, true); err != nil {
		t.Fatal(err)
	}
	if err := r.db.DeleteServer(ctx, lost); err != nil {
		t.Fatal(err)
	}
	again, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	if again.ServerID != to || again.Metadata["home_reset"] != true {
		t.Errorf("re-created on %s with metadata %v; want %s with home_reset", again.ServerID, again.Metadata, to)
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
	from, to := ws.ServerID, other(ws.ServerID)
	r.setState(from, fleet.StateDraining)
	if next, err := r.orch.Create(ctx, createReq("w2", "u1")); err != nil || next.ServerID != to {
		t.Errorf("new workspace while %s drains: got %v on %s, want %s", from, err, next.ServerID, to)
	}
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if ws.ServerID != to || ws.Status != fleet.StatusRunning || ws.Metadata["previous_server_id"] != from {
		t.Errorf("after restart: on %s (%s), metadata %v; want moved to %s", ws.ServerID, ws.Status, ws.Metadata, to)
	}
	if n := len(r.agents[from].Containers()); n != 0 {
		t.Errorf("containers left on the drained server: got %d, want the old one removed", n)
	}
}

// The sweep skips the rows inLine calls in line without reading them
// again: for every kind of row and container, a row inLine passes is one
// reconcileRowLocked leaves untouched (no write, no event). The rows it
// does not pass are the ones the other TestReconcile cases cover.
func TestInLineRowsAreLeftAlone(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 64, "ws-1")
	rows := []struct {
		status      fleet.Status
		reason      string
		containerID string
		acked       bool
	}{
		{fleet.StatusRunning, "", "c1", true}, {fleet.StatusStopped, "container exited", "c1", true},
		{fleet.StatusError, "container vanished from its server", "c1", true}, {fleet.StatusError, orchestrator.ReasonServerLost, "c1", true},
		{fleet.StatusPendingDeletion, "", "c1", true}, {fleet.StatusCreating, "", "", false}, {fleet.StatusCreating, "", "", true},
		{fleet.StatusStopped, "", "", true}, {fleet.StatusError, "no container", "", true},
	}
	containers := []struct {
		c      wire.Container
		exists bool
	}{{wire.Container{}, false}}
	for _, id := range []string{"c1", "c2"} {
		for _, state := range []string{"running", "exited", "dead", "paused", "created"} {
			for _, oom := range []bool{false, true} {
				containers = append(containers, struct {
					c      wire.Container
					exists bool
				}{wire.Container{ID: id, State: state, OOMKilled: oom}, true})
			}
		}
	}
	passed := 0
	for i, row := range rows {
		for j, ct := range containers {
			id := fmt.Sprintf("inline-%d-%d", i, j)
			reserveCreating(t, r, "ws-1", id)
			ws, err := r.db.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error {
				w.Status, w.StatusReason, w.ContainerID = row.status, row.reason, row.containerID
				if row.acked {
					w.AcknowledgedAt = time.Now().UTC()
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !orchestrator.InLine(ws, ct.c, ct.exists) {
				continue
			}
			passed++
			before := r.events(id)
			r.orch.ReconcileRow(ctx, r.client("ws-1"), ws, ct.c, ct.exists)
			after, err := r.db.GetWorkspace(ctx, id)
			if err != nil || after.Status != ws.Status || after.StatusReason != ws.StatusReason || after.ContainerID != ws.ContainerID {
				t.Errorf("row %+v, container %+v (exists %v): inLine passed it, but reconciliation made it %s %q %s (%v)",
					row, ct.c, ct.exists, after.Status, after.StatusReason, after.ContainerID, err)
			}
			if evs := r.events(id); len(evs) != len(before) {
				t.Errorf("row %+v, container %+v: inLine passed it, but reconciliation recorded %q", row, ct.c, evs[len(before):])
			}
		}
	}
	if passed < len(rows) {
		t.Errorf("inLine passed %d of %d cases: the test checks too little", passed, len(rows)*len(containers))
	}
}

// Run's sweep reaches every server, one after the other, each pass: an
// orphan container on each of two servers is stopped without any explicit
// reconcile call.
func TestRunSweepsEveryServer(t *testing.T) {
	bg := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	orch := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.ReconcileInterval = 50 * time.Millisecond })
	ghosts := map[string]wire.Container{"ws-1": r.fakeContainer(t, "ws-1", "ghost-1", 1), "ws-2": r.fakeContainer(t, "ws-2", "ghost-2", 1)}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- orch.Run(ctx) }()
	for server, c := range ghosts {
		waitFor(t, "the sweep to stop the orphan on "+server, func() bool {
			got, err := r.client(server).Inspect(bg, c.ID)
			return err == nil && got.State != "running"
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
}

// The container list a row is compared with is taken before the rows are
// read: a create that finished in between has a row naming a container the
// list does not show. That row is left alone (the agent still has the
// container); only a container the agent no longer has turns the row to
// error. (A sweep that ran during creates once turned acknowledged
// workspaces to error this way: the scheduler crash test caught it.)
func TestStaleListDoesNotVanishARow(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	r.orch.ReconcileRow(ctx, r.client("ws-1"), ws, wire.Container{}, false) // as from a list taken before the create
	if got, reason := status(t, r, "w1"); got != fleet.StatusRunning {
		t.Fatalf("after a stale list: got %s (%s), want running (its container is there)", got, reason)
	}
	if err := r.client("ws-1").Remove(ctx, ws.ContainerID, true); err != nil {
		t.Fatal(err)
	}
	r.orch.ReconcileRow(ctx, r.client("ws-1"), ws, wire.Container{}, false)
	if got, _ := status(t, r, "w1"); got != fleet.StatusError {
		t.Errorf("after the container was removed: got %s, want error", got)
	}
}
