package orchestrator

import (
	"context"
	"errors"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/registry"
)

// RunCleanup removes workspaces marked pending_deletion every interval:
// container, then data directory, then the record. It is the only code that
// deletes a workspace's data. A workspace whose agent cannot be reached stays
// pending and is retried on the next round.
func (o *Orchestrator) RunCleanup(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			o.CleanupOnce(ctx)
		}
	}
}

// CleanupOnce runs one cleanup round and returns how many workspaces it
// removed.
func (o *Orchestrator) CleanupOnce(ctx context.Context) int {
	pending, err := o.db.ListWorkspaces(ctx, registry.WorkspaceFilter{Statuses: []registry.Status{registry.StatusPendingDeletion}})
	if err != nil {
		o.log.Warn("cleanup: list", "error", err)
		return 0
	}
	done := 0
	for _, ws := range pending {
		if err := o.purge(ctx, ws); err != nil {
			o.log.Warn("cleanup: will retry", "workspace_id", ws.ID, "error", err)
			continue
		}
		done++
	}
	return done
}

func (o *Orchestrator) purge(ctx context.Context, ws registry.Workspace) error {
	defer o.markBusy(ws.ID)()
	if ws.ServerID != "" {
		s, err := o.db.GetServer(ctx, ws.ServerID)
		if err != nil {
			return err
		}
		client := o.agents.Client(s.ID, AgentAddr(s))
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if ws.ContainerID != "" {
			if err := client.Remove(cctx, ws.ContainerID, true); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
				return err
			}
		}
		if err := client.RemoveData(cctx, DataDir(ws.ID)); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
			return err
		}
	}
	if err := o.db.DeleteWorkspace(ctx, ws.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	o.event(ctx, registry.Event{Kind: "workspace.deleted", ServerID: ws.ServerID, WorkspaceID: ws.ID, Message: "container and data removed by cleanup"})
	o.log.Info("workspace purged", "workspace_id", ws.ID, "server", ws.ServerID)
	return nil
}
