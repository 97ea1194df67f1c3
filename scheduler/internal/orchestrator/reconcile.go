package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// errChanged aborts an update whose premise no longer holds.
var errChanged = errors.New("workspace changed meanwhile")

// ReasonServerLost is the status reason of a workspace whose server has
// been down for longer than the grace period.
const ReasonServerLost = "server_lost"

// Notifier hears of workspace status changes (the podex API's sync-status
// endpoint, when configured).
type Notifier interface {
	WorkspaceStatus(ctx context.Context, ws registry.Workspace)
}

// DownView tells since when a server has been down.
type DownView interface {
	DownSince(serverID string) (time.Time, bool)
}

// ReconcileOptions tune the reconciliation loop.
type ReconcileOptions struct {
	Interval    time.Duration // full pass over every server
	OrphanGrace time.Duration // a container without a record is removed after this long
	LostGrace   time.Duration // a server down this long loses its workspaces (server_lost)
}

// setStatus changes a workspace's status and tells the notifier on change.
func (o *Orchestrator) setStatus(ctx context.Context, id string, status registry.Status, reason string) {
	changed, err := o.db.SetWorkspaceStatus(ctx, id, status, reason)
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) {
			o.log.Warn("set workspace status", "workspace_id", id, "status", status, "error", err)
		}
		return
	}
	if changed {
		o.log.Info("workspace status changed", "workspace_id", id, "status", status, "reason", reason)
		if o.notifier != nil {
			if ws, err := o.db.GetWorkspace(ctx, id); err == nil {
				o.notifier.WorkspaceStatus(ctx, ws)
			}
		}
	}
}

// ContainerEvent applies one Docker event of a berth container (health.Sink):
// a container that dies (stopped; error when Docker says it was OOM-killed),
// is paused or removed outside berth changes its workspace's status at once.
func (o *Orchestrator) ContainerEvent(ctx context.Context, serverID string, ev wire.ContainerEvent) {
	if ev.WorkspaceID == "" || ev.Labels[wire.LabelCluster] != o.opts.ClusterID {
		return
	}
	if o.isBusy(ev.WorkspaceID) {
		return // berth itself is creating, moving or deleting it
	}
	ws, err := o.db.GetWorkspace(ctx, ev.WorkspaceID)
	if err != nil || ws.ServerID != serverID || ws.ContainerID != ev.ContainerID ||
		ws.Status == registry.StatusPendingDeletion || ws.Status == registry.StatusCreating {
		return // not the container the record names: reconciliation deals with it
	}
	switch ev.Action {
	case "oom":
		// A process of the workspace hit its memory limit. The workspace
		// may well live on; the die event that may follow says.
		o.event(ctx, registry.Event{Kind: "workspace.oom", ServerID: serverID, WorkspaceID: ws.ID,
			Message: "a process in the workspace was OOM-killed"})
	case "die":
		status, reason := registry.StatusStopped, fmt.Sprintf("container exited with code %d", ev.ExitCode)
		if s, err := o.db.GetServer(ctx, serverID); err == nil {
			ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if c, err := o.agents.Client(s.ID, AgentAddr(s)).Inspect(ictx, ev.ContainerID); err == nil {
				if st, why, ok := liveStatus(c); ok {
					status, reason = st, why
				}
			}
			cancel()
		}
		o.setStatus(ctx, ws.ID, status, reason)
	case "destroy":
		o.setStatus(ctx, ws.ID, registry.StatusError, "container removed outside berth")
	case "pause":
		o.setStatus(ctx, ws.ID, registry.StatusError, "container paused outside berth")
	case "start", "unpause":
		o.setStatus(ctx, ws.ID, registry.StatusRunning, "")
	}
}

// StreamOpened reconciles a server whose event stream (re)opened (health.Sink).
func (o *Orchestrator) StreamOpened(ctx context.Context, serverID string) {
	if err := o.ReconcileServer(ctx, serverID); err != nil {
		o.log.Debug("reconcile after stream open", "server", serverID, "error", err)
	}
}

// RunReconcile reconciles every server every interval, and turns the
// workspaces of servers down for longer than LostGrace to error.
func (o *Orchestrator) RunReconcile(ctx context.Context) error {
	t := time.NewTicker(o.rec.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			o.ReconcileOnce(ctx)
		}
	}
}

// ReconcileOnce makes one pass over every server.
func (o *Orchestrator) ReconcileOnce(ctx context.Context) {
	servers, err := o.db.ListServers(ctx)
	if err != nil {
		o.log.Warn("reconcile: list servers", "error", err)
		return
	}
	for _, s := range servers {
		if o.down != nil {
			if since, ok := o.down.DownSince(s.ID); ok && time.Since(since) > o.rec.LostGrace {
				o.markLost(ctx, s.ID, since)
				continue
			}
		}
		if err := o.ReconcileServer(ctx, s.ID); err != nil {
			o.log.Debug("reconcile", "server", s.ID, "error", err)
		}
	}
}

// markLost turns every workspace of a lost server to error/server_lost.
func (o *Orchestrator) markLost(ctx context.Context, serverID string, since time.Time) {
	rows, err := o.db.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: serverID})
	if err != nil {
		return
	}
	for _, ws := range rows {
		if ws.Status == registry.StatusPendingDeletion || (ws.Status == registry.StatusError && ws.StatusReason == ReasonServerLost) {
			continue
		}
		o.log.Warn("server lost: workspace in error", "workspace_id", ws.ID, "server", serverID, "down_since", since)
		o.setStatus(ctx, ws.ID, registry.StatusError, ReasonServerLost)
	}
}

// ReconcileServer compares the registry with the containers on one server:
//   - a creating record that no create is working on: adopt its container
//     if one exists (a scheduler crash between agent and registry), else
//     drop the never-acknowledged record;
//   - a record whose container vanished becomes error;
//   - a record whose container runs in another state than recorded is
//     brought in line (§8.2);
//   - a container with no record, or left over from an older placement of
//     a workspace that now lives elsewhere, is stopped at once if it runs
//     (a workspace must never run twice), reported, and removed after
//     OrphanGrace. Its data is never touched.
func (o *Orchestrator) ReconcileServer(ctx context.Context, serverID string) error {
	s, err := o.db.GetServer(ctx, serverID)
	if err != nil {
		return err
	}
	client := o.agents.Client(s.ID, AgentAddr(s))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	all, err := client.List(lctx)
	if err != nil {
		return err
	}
	containers := map[string]wire.Container{} // by workspace id
	byID := map[string]bool{}
	for _, c := range all {
		if c.Labels[wire.LabelCluster] != o.opts.ClusterID || c.Labels[wire.LabelWorkspaceID] == "" {
			continue
		}
		containers[c.Labels[wire.LabelWorkspaceID]] = c
		byID[c.ID] = true
	}
	rows, err := o.db.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: serverID})
	if err != nil {
		return err
	}
	recorded := map[string]bool{}
	for _, ws := range rows {
		c, ok := containers[ws.ID]
		if ok && containerEpoch(c) < ws.Epoch {
			ok = false // a leftover of an older placement: handled as an orphan below
		} else if ok {
			recorded[c.ID] = true
		}
		o.reconcileRow(ctx, ws, c, ok)
	}
	for _, c := range containers {
		if !recorded[c.ID] {
			o.orphan(ctx, client, serverID, c)
		}
	}
	o.forgetOrphans(serverID, byID)
	return nil
}

func (o *Orchestrator) reconcileRow(ctx context.Context, ws registry.Workspace, c wire.Container, exists bool) {
	if ws.Status == registry.StatusPendingDeletion {
		return
	}
	if ws.Status == registry.StatusCreating {
		if o.isBusy(ws.ID) {
			return
		}
		if !exists {
			if acknowledged(ws) { // a move that was interrupted: never drop an answered workspace
				o.setStatus(ctx, ws.ID, registry.StatusError, "re-placement interrupted; restart it to try again")
				return
			}
			dropped, err := o.db.DeleteWorkspaceIf(ctx, ws.ID, func(now registry.Workspace) bool {
				return now.Status == registry.StatusCreating && now.ContainerID == "" && !acknowledged(now) && !o.isBusy(now.ID)
			})
			if err == nil && dropped {
				o.log.Warn("dropped a create that never finished", "workspace_id", ws.ID, "server", ws.ServerID)
				o.event(ctx, registry.Event{Kind: "workspace.create_abandoned", ServerID: ws.ServerID, WorkspaceID: ws.ID,
					Message: "create was interrupted before its container existed; record dropped (it was never acknowledged)"})
			}
			return
		}
		status, _ := StatusFromDocker(c.State)
		if status == "" {
			status = registry.StatusStopped
		}
		o.log.Info("re-adopting container of an interrupted create", "workspace_id", ws.ID, "container", c.ID)
		if _, err := o.db.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
			if w.Status != registry.StatusCreating || o.isBusy(w.ID) {
				return errChanged
			}
			w.ContainerID, w.Status, w.StatusReason = c.ID, status, "re-adopted from labels"
			return nil
		}); err == nil {
			o.event(ctx, registry.Event{Kind: "workspace.adopted", ServerID: ws.ServerID, WorkspaceID: ws.ID, Message: "container re-adopted from its labels"})
		}
		return
	}
	if !exists {
		if ws.ContainerID != "" && ws.Status != registry.StatusError {
			o.setStatus(ctx, ws.ID, registry.StatusError, "container vanished from its server")
		}
		return
	}
	if c.ID != ws.ContainerID {
		o.log.Info("re-adopting container from labels", "workspace_id", ws.ID, "container", c.ID)
		o.db.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error { w.ContainerID = c.ID; return nil })
	}
	if ws.Status == registry.StatusError && ws.StatusReason == ReasonServerLost {
		return // the server came back: the user decides (restart re-places or resumes)
	}
	if status, reason, ok := liveStatus(c); ok && status != ws.Status {
		o.setStatus(ctx, ws.ID, status, reason)
	}
}

// orphan handles a berth container no record accounts for.
func (o *Orchestrator) orphan(ctx context.Context, client *agentclient.Client, serverID string, c wire.Container) {
	key := serverID + "/" + c.ID
	first, seen := o.orphans.LoadOrStore(key, time.Now())
	if !seen {
		o.log.Warn("orphan container", "server", serverID, "container", c.Name, "workspace_id", c.Labels[wire.LabelWorkspaceID])
		o.event(ctx, registry.Event{Kind: "workspace.orphan", ServerID: serverID, WorkspaceID: c.Labels[wire.LabelWorkspaceID],
			Message: fmt.Sprintf("container %s has no record here; stopped now, removed after %s", c.Name, o.rec.OrphanGrace)})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if c.State == "running" {
		if err := client.Stop(cctx, c.ID, 10*time.Second); err != nil {
			o.log.Warn("stop orphan", "container", c.Name, "error", err)
		}
	}
	if time.Since(first.(time.Time)) < o.rec.OrphanGrace {
		return
	}
	if err := client.Remove(cctx, c.ID, true); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
		o.log.Warn("remove orphan", "container", c.Name, "error", err)
		return
	}
	o.orphans.Delete(key)
	o.event(ctx, registry.Event{Kind: "workspace.orphan_removed", ServerID: serverID, WorkspaceID: c.Labels[wire.LabelWorkspaceID],
		Message: "orphan container " + c.Name + " removed (data kept)"})
}

// forgetOrphans drops the first-seen times of containers no longer there.
func (o *Orchestrator) forgetOrphans(serverID string, present map[string]bool) {
	prefix := serverID + "/"
	o.orphans.Range(func(k, _ any) bool {
		key := k.(string)
		if len(key) > len(prefix) && key[:len(prefix)] == prefix && !present[key[len(prefix):]] {
			o.orphans.Delete(k)
		}
		return true
	})
}

func containerEpoch(c wire.Container) int64 {
	n, _ := strconv.ParseInt(c.Labels[wire.LabelEpoch], 10, 64)
	return n
}
