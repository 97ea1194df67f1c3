package orchestrator_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// Concurrent creates of one id by its owner share one create: every
// caller gets the one running workspace (none gets
// a creating row without a container), and one container exists. When
// every create fails, every caller gets the failure and nothing is left.
func TestConcurrentCreatesOfOneID(t *testing.T) {
	const callers = 8
	tests := []struct {
		name    string
		fail    string // every agent's create answers with this code
		wantErr error
	}{
		{name: "all get the one workspace"},
		{name: "all get the failure", fail: wire.CodeDocker, wantErr: orchestrator.ErrCreateFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, 4, "ws-1", "ws-2")
			for _, a := range r.agents {
				a.FailCreate(tt.fail)
			}
			type result struct {
				ws  registry.Workspace
				err error
			}
			// The first create's agent call is held until every caller waits
			// for the workspace's lock.
			g := newGate(t)
			for _, a := range r.agents {
				g.install(a, isCreate)
			}
			results := make(chan result, callers)
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
					results <- result{ws, err}
				}()
			}
			<-g.entered // the first create reached an agent
			waitFor(t, "every create to join the create of w1", func() bool { return r.orch.CreateCallers("w1") == callers })
			if got, err := r.db.GetWorkspace(ctx, "w1"); err != nil || got.Status != fleet.StatusCreating {
				t.Errorf("while the first create runs: got %s, %v; want one creating row", got.Status, err)
			}
			g.release()
			wg.Wait()
			close(results)
			containers := r.containersOf("w1")
			var containerID string
			for _, cs := range containers {
				for _, c := range cs {
					containerID = c.ID
				}
			}
			for res := range results {
				switch {
				case tt.wantErr != nil:
					if !errors.Is(res.err, tt.wantErr) || !errors.Is(res.err, agentclient.ErrDocker) {
						t.Errorf("Create: got %v, want %v from the agent's docker error", res.err, tt.wantErr)
					}
				case res.err != nil:
					t.Errorf("Create: got error %v, want the workspace", res.err)
				case res.ws.Status != fleet.StatusRunning || res.ws.ContainerID == "" || res.ws.ContainerID != containerID:
					t.Errorf("Create: got %s with container %q, want running with the one container %q", res.ws.Status, res.ws.ContainerID, containerID)
				}
			}
			n := 0
			for _, cs := range containers {
				n += len(cs)
			}
			wantContainers, wantRows := 1, 1
			if tt.wantErr != nil {
				wantContainers, wantRows = 0, 0
			}
			if n != wantContainers {
				t.Errorf("containers of w1: got %d (%+v), want %d", n, containers, wantContainers)
			}
			rows, err := r.db.ListWorkspaces(ctx, registry.WorkspaceFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != wantRows {
				t.Errorf("rows: got %d (%+v), want %d", len(rows), rows, wantRows)
			}
			if users := r.orch.LockUsers("w1"); users != 0 {
				t.Errorf("lock of w1: got %d holders or waiters after every create returned, want 0", users)
			}
		})
	}
}

// A restart that moves a workspace (its server drains) and a scale of the
// same workspace, run together, never interleave: afterwards the
// reservation is the recorded tier's, and the one container has that
// tier's limits.
func TestRestartAndScaleDoNotInterleave(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	if _, err := r.orch.Create(ctx, createReq("w1", "u1")); err != nil {
		t.Fatal(err)
	}
	catalog := tiers.Builtin()
	for round := range 12 {
		ws, err := r.orch.Get(ctx, "w1")
		if err != nil {
			t.Fatal(err)
		}
		r.setState(ws.ServerID, fleet.StateDraining)
		r.setState(other(ws.ServerID), fleet.StateActive)
		to := map[string]string{"starter": "pro", "pro": "starter"}[ws.Tier]
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := r.orch.Restart(ctx, ws); err != nil {
				t.Errorf("round %d: Restart: %v", round, err)
			}
		}()
		go func() {
			defer wg.Done()
			if res, err := r.orch.Scale(ctx, ws, to); err != nil || res.Outcome != orchestrator.Scaled {
				t.Errorf("round %d: Scale to %s: got %+v, %v; want scaled", round, to, res, err)
			}
		}()
		wg.Wait()
		got, err := r.orch.Get(ctx, "w1")
		if err != nil {
			t.Fatal(err)
		}
		spec := catalog.Resolve(got.Tier)
		if got.Tier != to || got.Reservation != spec.Resources() || got.Status != fleet.StatusRunning || got.ServerID == ws.ServerID {
			t.Fatalf("round %d: got tier %s, reservation %+v, %s on %s; want tier %s reserving %+v, running, moved off %s",
				round, got.Tier, got.Reservation, got.Status, got.ServerID, to, spec.Resources(), ws.ServerID)
		}
		containers := r.containersOf("w1")
		cs := containers[got.ServerID]
		if len(containers) != 1 || len(cs) != 1 {
			t.Fatalf("round %d: containers of w1: got %+v, want one, on %s", round, containers, got.ServerID)
		}
		if want := (wire.Resources{CPU: spec.VCPU, MemoryMB: spec.MemoryMB}); cs[0].ID != got.ContainerID || cs[0].Resources != want {
			t.Fatalf("round %d: container %s with limits %+v; want the recorded %s with %s's limits %+v",
				round, cs[0].ID, cs[0].Resources, got.ContainerID, got.Tier, want)
		}
	}
}

// Run reconciles and cleans up on its own until its ctx ends, and then
// returns nil.
func TestReconcilerRunEndsWithItsContext(t *testing.T) {
	tests := []struct {
		name      string
		cancelled bool // ctx ended before Run starts
	}{
		{name: "works until cancelled"},
		{name: "already cancelled", cancelled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bg := context.Background()
			r := newRig(t, 4, "ws-1")
			orch := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) {
				c.ReconcileInterval, c.CleanupInterval = 5*time.Millisecond, 5*time.Millisecond
			})
			ws, err := orch.Create(bg, createReq("w1", "u1"))
			if err != nil {
				t.Fatal(err)
			}
			if err := orch.MarkForDeletion(bg, ws); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			done := make(chan error, 1)
			go func() { done <- orch.Run(ctx) }()
			if !tt.cancelled {
				waitFor(t, "the cleanup loop to purge w1", func() bool {
					_, err := r.db.GetWorkspace(bg, "w1")
					return errors.Is(err, registry.ErrNotFound)
				})
				cancel()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: got %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its ctx was cancelled")
			}
		})
	}
}
