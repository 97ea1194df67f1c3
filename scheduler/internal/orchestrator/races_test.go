package orchestrator_test

import (
	"context"
	"errors"
	"testing"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// A re-placement interrupted by a crash (row moved, no container yet) must
// not be dropped as a never-acknowledged create.
func TestInterruptedMoveKeepsWorkspace(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	to := other(ws.ServerID)
	if _, err := r.db.MoveWorkspace(ctx, "w1", to, registry.Limits{}); err != nil { // what a move does first; then a crash
		t.Fatal(err)
	}
	if err := r.orch.ReconcileServer(ctx, to); err != nil {
		t.Fatal(err)
	}
	got, err := r.orch.Get(ctx, "w1")
	if err != nil || got.Status != fleet.StatusError {
		t.Fatalf("after reconcile: got %v, status %s; want the workspace kept, in error", err, got.Status)
	}
}

// pending_deletion is sticky: a restart does not undo it, and a mark asked
// for while the create is still running waits for the create and survives
// it.
func TestPendingDeletionIsSticky(t *testing.T) {
	ctx := context.Background()
	t.Run("restart after mark", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.orch.MarkForDeletion(ctx, ws); err != nil {
			t.Fatal(err)
		}
		ws, _ = r.orch.Get(ctx, "w1")
		if err := r.orch.Restart(ctx, ws); !errors.Is(err, orchestrator.ErrMarkedForDeletion) {
			t.Errorf("Restart: got %v, want ErrMarkedForDeletion", err)
		}
		if n := r.orch.CleanupOnce(ctx); n != 1 {
			t.Errorf("cleanup: got %d removed, want 1", n)
		}
	})
	t.Run("mark during create", func(t *testing.T) {
		r := newRig(t, 4, "ws-1")
		entered, release := hold(t, r.agents["ws-1"], isCreate)
		created := make(chan error, 1)
		go func() { _, err := r.orch.Create(ctx, createReq("w1", "u1")); created <- err }()
		<-entered
		ws, err := r.orch.Get(ctx, "w1")
		if err != nil {
			t.Fatal(err)
		}
		marked := make(chan error, 1)
		go func() { marked <- r.orch.MarkForDeletion(ctx, ws) }()
		waitFor(t, "the mark to wait for the create's lock", func() bool { return r.orch.LockUsers("w1") == 2 })
		if got, _ := r.orch.Get(ctx, "w1"); got.Status != fleet.StatusCreating {
			t.Errorf("while the create runs: got %s, want creating (the mark waits)", got.Status)
		}
		release()
		if err := <-created; err != nil {
			t.Fatal(err)
		}
		if err := <-marked; err != nil {
			t.Fatal(err)
		}
		if got, _ := r.orch.Get(ctx, "w1"); got.Status != fleet.StatusPendingDeletion || got.ContainerID == "" {
			t.Errorf("after create and mark: got status %s, container %q; want pending_deletion with its container recorded", got.Status, got.ContainerID)
		}
	})
}

// A retried POST for a workspace still being created waits for the first
// and gets its workspace; a reconcile pass meanwhile does not lose the
// first create.
func TestDuplicateCreateDuringCreate(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1")
	entered, release := hold(t, r.agents["ws-1"], isCreate)
	type result struct {
		ws  registry.Workspace
		err error
	}
	first, retried := make(chan result, 1), make(chan result, 1)
	go func() { ws, err := r.orch.Create(ctx, createReq("w1", "u1")); first <- result{ws, err} }()
	<-entered
	go func() { ws, err := r.orch.Create(ctx, createReq("w1", "u1")); retried <- result{ws, err} }()
	waitFor(t, "the retried create to wait for the first", func() bool { return r.orch.CreateCallers("w1") == 2 })
	if err := r.orch.ReconcileServer(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.orch.Get(ctx, "w1"); err != nil || got.Status != fleet.StatusCreating {
		t.Errorf("after a reconcile pass during the create: got %s, %v; want the creating row kept", got.Status, err)
	}
	release()
	a, b := <-first, <-retried
	if a.err != nil || b.err != nil {
		t.Fatalf("first create: %v, retried create: %v; want both to succeed", a.err, b.err)
	}
	if a.ws.Status != fleet.StatusRunning || b.ws.Status != fleet.StatusRunning || a.ws.ContainerID == "" || a.ws.ContainerID != b.ws.ContainerID {
		t.Errorf("first: %s %q, retried: %s %q; want both running with one container", a.ws.Status, a.ws.ContainerID, b.ws.Status, b.ws.ContainerID)
	}
	if n := len(r.agents["ws-1"].Containers()); n != 1 {
		t.Errorf("containers: got %d, want 1", n)
	}
}
