package orchestrator

import (
	"context"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// LockUsers is how many operations hold or wait for the workspace's lock:
// a test sees with it that an operation is waiting for another.
func (o *Orchestrator) LockUsers(workspaceID string) int {
	l := o.Placer.locks
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.m[workspaceID]; w != nil {
		return w.users
	}
	return 0
}

// CreateCallers is how many callers share the create of the workspace under
// way: a test sees with it that a create waits for another.
func (o *Orchestrator) CreateCallers(workspaceID string) int {
	f := o.flights
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[workspaceID]; fl != nil {
		return fl.callers
	}
	return 0
}

// HoldLock takes the workspace's lock as an operation would, and returns
// its release.
func (o *Orchestrator) HoldLock(workspaceID string) func() { return o.Placer.locks.lock(workspaceID) }

// InLine is inLine; ReconcileRow is reconcileRowLocked, without the lock.
var InLine = inLine

func (o *Orchestrator) ReconcileRow(ctx context.Context, client *agentclient.Client, ws registry.Workspace, c wire.Container, exists bool) {
	o.reconcileRowLocked(ctx, client, ws, c, exists)
}
