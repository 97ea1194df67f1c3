package orchestrator_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// holdCreates makes the fake agent of server block every container create
// until release is closed; entered receives one value per create.
func holdCreates(r *rig, server string) (entered chan struct{}, release chan struct{}) {
	entered, release = make(chan struct{}, 8), make(chan struct{})
	a := r.agents[server]
	h := a.Server.Config.Handler
	a.Server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		if q.Method == http.MethodPost && q.URL.Path == wire.PathContainers {
			entered <- struct{}{}
			<-release
		}
		h.ServeHTTP(w, q)
	})
	return entered, release
}

// A re-placement interrupted by a crash (row moved, no container yet) must
// not be dropped as a never-acknowledged create.
func TestInterruptedMoveKeepsWorkspace(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	to := map[string]string{"ws-1": "ws-2", "ws-2": "ws-1"}[ws.ServerID]
	if _, err := r.db.MoveWorkspace(ctx, "w1", to, registry.Limits{}); err != nil { // what replace does first; then a crash
		t.Fatal(err)
	}
	r.orch.ReconcileServer(ctx, to)
	got, err := r.orch.Get(ctx, "w1")
	if err != nil || got.Status != fleet.StatusError {
		t.Fatalf("after reconcile: %v, status %s; want the workspace kept, in error", err, got.Status)
	}
}

// pending_deletion is sticky: a restart does not undo it, and a mark made
// while the create is still running survives the create's end.
func TestPendingDeletionIsSticky(t *testing.T) {
	ctx := context.Background()
	t.Run("restart after mark", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		ws, _ := r.orch.Create(ctx, createReq("w1", "u1"))
		r.orch.MarkForDeletion(ctx, ws)
		ws, _ = r.orch.Get(ctx, "w1")
		if err := r.orch.Restart(ctx, ws); !errors.Is(err, orchestrator.ErrMarkedForDeletion) {
			t.Errorf("Restart = %v, want ErrMarkedForDeletion", err)
		}
		if n := r.orch.CleanupOnce(ctx); n != 1 {
			t.Errorf("cleanup removed %d, want 1", n)
		}
	})
	t.Run("mark during create", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		entered, release := holdCreates(r, "ws-1")
		done := make(chan error, 1)
		go func() { _, err := r.orch.Create(ctx, createReq("w1", "u1")); done <- err }()
		<-entered
		ws, _ := r.orch.Get(ctx, "w1")
		if err := r.orch.MarkForDeletion(ctx, ws); err != nil {
			t.Fatal(err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got, _ := r.orch.Get(ctx, "w1"); got.Status != fleet.StatusPendingDeletion || got.ContainerID == "" {
			t.Errorf("after create: status %s, container %q; want pending_deletion with its container recorded", got.Status, got.ContainerID)
		}
	})
}

// A retried POST for a workspace still being created, and a reconcile pass
// meanwhile, do not lose the first create.
func TestDuplicateCreateDuringCreate(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1")
	entered, release := holdCreates(r, "ws-1")
	var wg sync.WaitGroup
	var firstErr error
	wg.Add(1)
	go func() { defer wg.Done(); _, firstErr = r.orch.Create(ctx, createReq("w1", "u1")) }()
	<-entered
	if _, err := r.orch.Create(ctx, createReq("w1", "u1")); err != nil {
		t.Errorf("retried create: %v", err)
	}
	r.orch.ReconcileServer(ctx, "ws-1")
	close(release)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("first create failed after a retry and a reconcile pass: %v", firstErr)
	}
	if got, err := r.orch.Get(ctx, "w1"); err != nil || got.Status != fleet.StatusRunning {
		t.Errorf("final: %v %s, want running", err, got.Status)
	}
}
