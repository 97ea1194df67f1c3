package orchestrator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// evictRig has w1 and w2 on ws-1 and w3 on ws-2, all running.
func evictRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	r.setState("ws-2", fleet.StateDraining)
	for _, id := range []string{"w1", "w2"} {
		if ws, err := r.orch.Create(ctx, createReq(id, "u1")); err != nil || ws.ServerID != "ws-1" {
			t.Fatalf("Create %s: got %s, %v; want it on ws-1", id, ws.ServerID, err)
		}
	}
	r.setState("ws-2", fleet.StateActive)
	r.setState("ws-1", fleet.StateDraining)
	if ws, err := r.orch.Create(ctx, createReq("w3", "u1")); err != nil || ws.ServerID != "ws-2" {
		t.Fatalf("Create w3: got %s, %v; want it on ws-2", ws.ServerID, err)
	}
	r.setState("ws-1", fleet.StateActive)
	return r
}

// fleetState is what an eviction may change: servers' states, rows, the
// containers on the agents, the eviction events and the notifications.
type fleetState struct {
	States     map[string]fleet.State
	Rows       map[string]string // id → "server status container"
	Containers map[string]int    // server → containers
	Evicted    []string          // workspace.evicted events, "workspace@server"
	Notes      []note
}

func (r *rig) fleetState() fleetState {
	r.t.Helper()
	ctx := context.Background()
	s := fleetState{States: map[string]fleet.State{}, Rows: map[string]string{}, Containers: map[string]int{}}
	servers, err := r.db.ListServers(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, srv := range servers {
		s.States[srv.ID] = srv.State
	}
	rows, err := r.db.ListWorkspaces(ctx, registry.WorkspaceFilter{})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, w := range rows {
		s.Rows[w.ID] = w.ServerID + " " + string(w.Status) + " " + w.ContainerID
	}
	for id, a := range r.agents {
		s.Containers[id] = len(a.Containers())
	}
	evs, err := r.db.ListEvents(ctx, registry.EventFilter{Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range evs {
		if e.Kind == "workspace.evicted" {
			s.Evicted = append(s.Evicted, e.WorkspaceID+"@"+e.ServerID)
		}
	}
	s.Notes = r.notes.all()
	return s
}

const evictedReason = "server removed by an operator"

func TestEvictServer(t *testing.T) {
	ctx := context.Background()
	t.Run("refused without force, nothing changes", func(t *testing.T) {
		r := evictRig(t)
		before := r.fleetState()
		n, err := r.orch.EvictServer(ctx, "ws-1", false)
		if n != 0 || !matchError(err, &orchestrator.ServerInUseError{ServerID: "ws-1", Workspaces: 2}) {
			t.Errorf("EvictServer: got %d, %v; want 0 and ServerInUseError{ws-1, 2}", n, err)
		}
		if d := cmp.Diff(before, r.fleetState()); d != "" {
			t.Errorf("a refused eviction changed the fleet (-before +after):\n%s", d)
		}
	})
	t.Run("a server without workspaces needs no force", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		before := r.fleetState()
		if n, err := r.orch.EvictServer(ctx, "ws-1", false); n != 0 || err != nil {
			t.Errorf("EvictServer: got %d, %v; want 0, nil", n, err)
		}
		if d := cmp.Diff(before, r.fleetState()); d != "" {
			t.Errorf("evicting an empty server changed the fleet (-before +after):\n%s", d)
		}
	})
	t.Run("forced: cordoned, containers and rows gone, events and notifications", func(t *testing.T) {
		r := evictRig(t)
		before := r.fleetState()
		n, err := r.orch.EvictServer(ctx, "ws-1", true)
		if n != 2 || err != nil {
			t.Fatalf("EvictServer: got %d, %v; want 2, nil", n, err)
		}
		after := r.fleetState()
		want := fleetState{
			States:     map[string]fleet.State{"ws-1": fleet.StateCordoned, "ws-2": fleet.StateActive},
			Rows:       map[string]string{"w3": before.Rows["w3"]},
			Containers: map[string]int{"ws-1": 0, "ws-2": 1},
			Evicted:    []string{"w1@ws-1", "w2@ws-1"},
			Notes:      []note{{"w1", fleet.StatusError, evictedReason}, {"w2", fleet.StatusError, evictedReason}},
		}
		sortEvicted := cmpopts.SortSlices(func(a, b string) bool { return a < b })
		sortNotes := cmpopts.SortSlices(func(a, b note) bool { return a.WorkspaceID < b.WorkspaceID })
		if d := cmp.Diff(want, after, sortEvicted, sortNotes); d != "" {
			t.Errorf("after a forced eviction (-want +got):\n%s", d)
		}
		if got := r.agents["ws-1"].RemovedData(); len(got) != 0 {
			t.Errorf("data removed: got %q, want the data kept", got)
		}
		if ws, err := r.orch.Create(ctx, createReq("w4", "u1")); err != nil || ws.ServerID != "ws-2" {
			t.Errorf("a create after the eviction: got %s, %v; want it on ws-2 (ws-1 is cordoned)", ws.ServerID, err)
		}
	})
	t.Run("forced: a workspace being changed is waited for", func(t *testing.T) {
		r := evictRig(t)
		isStop := func(q *http.Request) bool {
			return q.Method == http.MethodPost && strings.HasSuffix(q.URL.Path, "/stop")
		}
		entered, release := hold(t, r.agents["ws-1"], isStop)
		w1, err := r.orch.Get(ctx, "w1")
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan error, 1)
		go func() { stopped <- r.orch.Stop(ctx, w1) }()
		<-entered
		type result struct {
			n   int
			err error
		}
		evicted := make(chan result, 1)
		go func() { n, err := r.orch.EvictServer(ctx, "ws-1", true); evicted <- result{n, err} }()
		waitFor(t, "the eviction to wait for the lock of w1", func() bool { return r.orch.LockUsers("w1") == 2 })
		if got, err := r.orch.Get(ctx, "w1"); err != nil || got.Status != fleet.StatusRunning {
			t.Errorf("w1 while its stop runs: got %s, %v; want it untouched by the eviction", got.Status, err)
		}
		select {
		case res := <-evicted:
			t.Fatalf("EvictServer returned %d, %v while w1's stop was still running", res.n, res.err)
		default:
		}
		release()
		if err := <-stopped; err != nil {
			t.Errorf("Stop: %v", err)
		}
		if res := <-evicted; res.n != 2 || res.err != nil {
			t.Errorf("EvictServer: got %d, %v; want 2, nil", res.n, res.err)
		}
		after := r.fleetState()
		if _, ok := after.Rows["w1"]; ok || after.Containers["ws-1"] != 0 {
			t.Errorf("after the eviction: rows %v, %d containers on ws-1; want w1 gone with its container", after.Rows, after.Containers["ws-1"])
		}
		var w1Notes []note
		for _, n := range after.Notes {
			if n.WorkspaceID == "w1" {
				w1Notes = append(w1Notes, n)
			}
		}
		if want := []note{{"w1", fleet.StatusStopped, ""}, {"w1", fleet.StatusError, evictedReason}}; !cmp.Equal(want, w1Notes) {
			t.Errorf("notifications of w1: got %+v, want the stop's, then the eviction's: %+v", w1Notes, want)
		}
	})
}
