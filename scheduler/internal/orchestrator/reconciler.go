package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// Reconciler keeps the registry true to what runs: it applies the agents'
// container events, compares registry and containers server by server,
// turns the workspaces of lost servers to server_lost, and purges
// workspaces marked for deletion. It only tries workspace locks: a
// workspace someone is changing is left to the next round. Safe for
// concurrent use.
type Reconciler struct {
	*core
	orphans sync.Map // "server/container" → time.Time first seen
}

// errChanged aborts an update whose premise no longer holds.
var errChanged = errors.New("workspace changed meanwhile")

// Run compares the servers with their containers (sweep), turns the
// workspaces of servers down past LostGrace to server_lost every
// ReconcileInterval, purges marked workspaces every CleanupInterval, stops
// idle ones every IdleCheckInterval and deletes old events at start and
// every EventPruneInterval, until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { r.sweep(ctx) })
	lost := time.NewTicker(r.cfg.ReconcileInterval)
	defer lost.Stop()
	cleanup := time.NewTicker(r.cfg.CleanupInterval)
	defer cleanup.Stop()
	idle := time.NewTicker(r.cfg.IdleCheckInterval)
	defer idle.Stop()
	prune := time.NewTicker(r.cfg.EventPruneInterval)
	defer prune.Stop()
	r.PruneEventsOnce(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost.C:
			r.markLostOnce(ctx)
		case <-cleanup.C:
			r.CleanupOnce(ctx)
		case <-idle.C:
			r.IdleOnce(ctx)
		case now := <-prune.C:
			r.PruneEventsOnce(ctx, now)
		}
	}
}

// sweep compares each server with its containers (ReconcileServer), one
// server at a time and evenly spaced, pass after pass until ctx ends. A
// pass takes ReconcileInterval, or longer in a fleet larger than
// ReconcileInterval × ReconcileRate so that no more than ReconcileRate
// servers are compared a second (at 10,000 servers and 50 a second: each
// every 200 s). The agents' event logs report changes as they happen and
// every gap in them is reconciled at once; the sweep catches the rest
// (an orphan container, a change an agent never saw). Servers down are
// left out: markLostOnce deals with them.
func (r *Reconciler) sweep(ctx context.Context) {
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for {
		servers, err := r.DB.ListServerAddrs(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile: list servers", "error", err)
		}
		pass := r.cfg.ReconcileInterval
		if r.cfg.ReconcileRate > 0 {
			pass = max(pass, time.Duration(float64(len(servers))/r.cfg.ReconcileRate*float64(time.Second)))
		}
		if len(servers) == 0 {
			if !wait(pass) {
				return
			}
			continue
		}
		step := pass / time.Duration(len(servers))
		// A server compared less often than an idle connection stays open
		// gets a connection of its own for the comparison, closed after it:
		// in a large fleet nothing is kept open per server between passes.
		oneOff := pass > agentclient.IdleConnTimeout
		for _, s := range servers {
			if !wait(step) {
				return
			}
			if _, down := r.downSince(s.ID); down {
				continue
			}
			if err := r.reconcileServer(ctx, s.ID, oneOff); err != nil && ctx.Err() == nil {
				r.log.Debug("reconcile", "server", s.ID, "error", err)
			}
		}
	}
}

func (r *Reconciler) downSince(serverID string) (time.Time, bool) {
	if r.Down == nil {
		return time.Time{}, false
	}
	return r.Down.DownSince(serverID)
}

// markLostOnce turns to server_lost the workspaces of every server down
// longer than LostGrace.
func (r *Reconciler) markLostOnce(ctx context.Context) {
	servers, err := r.DB.ListServerAddrs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reconcile: list servers", "error", err)
		}
		return
	}
	for _, s := range servers {
		if since, ok := r.downSince(s.ID); ok && time.Since(since) > r.cfg.LostGrace {
			r.markLost(ctx, s.ID, since)
		}
	}
}

// PruneEventsOnce deletes the events older than EventRetention before now
// and returns how many went; none with a retention of 0.
func (r *Reconciler) PruneEventsOnce(ctx context.Context, now time.Time) int64 {
	if r.cfg.EventRetention <= 0 {
		return 0
	}
	n, err := r.DB.PruneEvents(ctx, now.Add(-r.cfg.EventRetention))
	switch {
	case err != nil:
		r.log.Warn("prune events: will retry", "error", err)
	case n > 0:
		r.log.Info("events pruned", "deleted", n, "older_than", r.cfg.EventRetention)
	}
	return n
}

// ContainerEvent applies one Docker event of a berth container (health.Sink):
// a container that dies (stopped; error when Docker says it was OOM-killed),
// is paused or removed outside berth changes its workspace's status at once.
func (r *Reconciler) ContainerEvent(ctx context.Context, serverID string, ev wire.ContainerEvent) {
	if ev.WorkspaceID == "" || ev.Labels[wire.LabelCluster] != r.cfg.ClusterID {
		return
	}
	unlock, ok := r.locks.tryLock(ev.WorkspaceID)
	if !ok {
		return // berth itself is changing it
	}
	defer unlock()
	ws, err := r.DB.GetWorkspace(ctx, ev.WorkspaceID)
	if err != nil || ws.ServerID != serverID || ws.ContainerID != ev.ContainerID ||
		ws.Status == fleet.StatusPendingDeletion || ws.Status == fleet.StatusCreating {
		return // not the container the record names: reconciliation deals with it
	}
	switch ev.Action {
	case "oom":
		// A process of the workspace hit its memory limit. The workspace
		// may well live on; the die event that may follow says.
		r.event(ctx, registry.Event{Kind: "workspace.oom", ServerID: serverID, WorkspaceID: ws.ID,
			Message: "a process in the workspace was OOM-killed"})
	case "die":
		status, reason := fleet.StatusStopped, fmt.Sprintf("container exited with code %d", ev.ExitCode)
		if s, err := r.DB.GetServer(ctx, serverID); err == nil {
			ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if c, err := r.agent(s).Inspect(ictx, ev.ContainerID); err == nil {
				if st, why, ok := liveStatus(c); ok {
					status, reason = st, why
				}
			}
			cancel()
		}
		r.setStatusAtLocked(ctx, ws.ID, status, reason, ev.Time)
	case "destroy":
		r.setStatusAtLocked(ctx, ws.ID, fleet.StatusError, "container removed outside berth", ev.Time)
	case "pause":
		r.setStatusAtLocked(ctx, ws.ID, fleet.StatusError, "container paused outside berth", ev.Time)
	case "start", "unpause":
		r.setStatusAtLocked(ctx, ws.ID, fleet.StatusRunning, "", ev.Time)
	}
}

// StreamOpened reconciles a server whose event stream (re)opened, or whose
// events are followed from a reset (health.Sink): a first contact, once per
// server and all of them when the scheduler starts, so the agent is called
// on a connection of its own that closes after.
func (r *Reconciler) StreamOpened(ctx context.Context, serverID string) {
	if err := r.reconcileServer(ctx, serverID, true); err != nil {
		r.log.Debug("reconcile after stream open", "server", serverID, "error", err)
	}
}

// ReconcileOnce makes one pass over every server at once: the lost ones
// are marked (markLostOnce), the others compared with their containers.
func (r *Reconciler) ReconcileOnce(ctx context.Context) {
	r.markLostOnce(ctx)
	servers, err := r.DB.ListServerAddrs(ctx)
	if err != nil {
		r.log.Warn("reconcile: list servers", "error", err)
		return
	}
	for _, s := range servers {
		if _, down := r.downSince(s.ID); down {
			continue
		}
		if err := r.ReconcileServer(ctx, s.ID); err != nil {
			r.log.Debug("reconcile", "server", s.ID, "error", err)
		}
	}
}

// markLost turns every workspace of a lost server to error/server_lost.
func (r *Reconciler) markLost(ctx context.Context, serverID string, since time.Time) {
	rows, err := r.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: serverID})
	if err != nil {
		return
	}
	for _, ws := range rows {
		if ws.Status == fleet.StatusPendingDeletion || (ws.Status == fleet.StatusError && ws.StatusReason == ReasonServerLost) {
			continue
		}
		unlock, ok := r.locks.tryLock(ws.ID)
		if !ok {
			continue
		}
		r.log.Warn("server lost: workspace in error", "workspace_id", ws.ID, "server", serverID, "down_since", since)
		r.setStatusAtLocked(ctx, ws.ID, fleet.StatusError, ReasonServerLost, since)
		unlock()
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
func (r *Reconciler) ReconcileServer(ctx context.Context, serverID string) error {
	return r.reconcileServer(ctx, serverID, false)
}

// reconcileServer is ReconcileServer; oneOff calls the agent on a
// connection of its own (Agents.Probe).
func (r *Reconciler) reconcileServer(ctx context.Context, serverID string, oneOff bool) error {
	s, err := r.DB.GetServer(ctx, serverID)
	if err != nil {
		return err
	}
	var client *agentclient.Client
	if oneOff { // not r.agent: that caches a client per server
		client = r.Agents.Probe(s.ID, AgentAddr(s))
	} else {
		client = r.agent(s)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	all, err := client.List(lctx)
	if err != nil {
		return err
	}
	containers := map[string]wire.Container{} // by workspace id
	byID := map[string]bool{}
	for _, c := range all {
		if c.Labels[wire.LabelCluster] != r.cfg.ClusterID || c.Labels[wire.LabelWorkspaceID] == "" {
			continue
		}
		containers[c.Labels[wire.LabelWorkspaceID]] = c
		byID[c.ID] = true
	}
	rows, err := r.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: serverID})
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
		if inLine(ws, c, ok) {
			continue // the common case: no lock taken, nothing read again
		}
		if unlock, free := r.locks.tryLock(ws.ID); free {
			r.reconcileRowLocked(ctx, client, ws, c, ok)
			unlock()
		}
	}
	for _, c := range containers {
		if !recorded[c.ID] && !r.locks.held(c.Labels[wire.LabelWorkspaceID]) {
			r.orphan(ctx, client, serverID, c)
		}
	}
	r.forgetOrphans(serverID, byID)
	return nil
}

// inLine is whether reconcileRowLocked would leave the record as it is:
// ws as listed, c its container (exists: there is one, of its placement).
// It must say false wherever reconcileRowLocked may write.
func inLine(ws registry.Workspace, c wire.Container, exists bool) bool {
	switch {
	case ws.Status == fleet.StatusPendingDeletion:
		return true
	case ws.Status == fleet.StatusCreating:
		return false
	case !exists:
		return ws.ContainerID == "" || ws.Status == fleet.StatusError
	case c.ID != ws.ContainerID:
		return false
	case ws.Status == fleet.StatusError && ws.StatusReason == ReasonServerLost:
		return true
	}
	status, _, ok := liveStatus(c)
	return !ok || status == ws.Status
}

// reconcileRowLocked brings one record in line with its container (c, as
// client listed it before the rows were read; exists: the list had one of
// the row's placement). The caller holds the workspace's lock, so no create
// or move is under way.
func (r *Reconciler) reconcileRowLocked(ctx context.Context, client *agentclient.Client, ws registry.Workspace, c wire.Container, exists bool) {
	ws, err := r.DB.GetWorkspace(ctx, ws.ID) // as it is now that the lock is held
	if err != nil || ws.Status == fleet.StatusPendingDeletion {
		return
	}
	if ws.Status == fleet.StatusCreating {
		if !exists {
			if !ws.AcknowledgedAt.IsZero() { // a move that was interrupted: never drop an answered workspace
				r.setStatusLocked(ctx, ws.ID, fleet.StatusError, "re-placement interrupted; restart it to try again")
				return
			}
			dropped, err := r.DB.DeleteWorkspaceIf(ctx, ws.ID, func(now registry.Workspace) bool {
				return now.Status == fleet.StatusCreating && now.ContainerID == "" && now.AcknowledgedAt.IsZero()
			})
			if err == nil && dropped {
				r.log.Warn("dropped a create that never finished", "workspace_id", ws.ID, "server", ws.ServerID)
				r.event(ctx, registry.Event{Kind: "workspace.create_abandoned", ServerID: ws.ServerID, WorkspaceID: ws.ID,
					Message: "create was interrupted before its container existed; record dropped (it was never acknowledged)"})
			}
			return
		}
		status, _ := StatusFromDocker(c.State)
		if status == "" {
			status = fleet.StatusStopped
		}
		r.log.Info("re-adopting container of an interrupted create", "workspace_id", ws.ID, "container", c.ID)
		if _, err := r.DB.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
			if w.Status != fleet.StatusCreating {
				return errChanged
			}
			w.ContainerID, w.Status, w.StatusReason = c.ID, status, "re-adopted from labels"
			return nil
		}); err == nil {
			r.event(ctx, registry.Event{Kind: "workspace.adopted", ServerID: ws.ServerID, WorkspaceID: ws.ID, Message: "container re-adopted from its labels"})
		}
		return
	}
	if !exists {
		if ws.ContainerID != "" && ws.Status != fleet.StatusError && r.vanished(ctx, client, ws.ContainerID) {
			r.setStatusLocked(ctx, ws.ID, fleet.StatusError, "container vanished from its server")
		}
		return
	}
	if c.ID != ws.ContainerID {
		r.log.Info("re-adopting container from labels", "workspace_id", ws.ID, "container", c.ID)
		if _, err := r.DB.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error { w.ContainerID = c.ID; return nil }); err != nil {
			r.log.Warn("re-adopt container", "workspace_id", ws.ID, "error", err)
		}
	}
	if ws.Status == fleet.StatusError && ws.StatusReason == ReasonServerLost {
		return // the server came back: the user decides (restart re-places or resumes)
	}
	if status, reason, ok := liveStatus(c); ok && status != ws.Status {
		r.setStatusAtLocked(ctx, ws.ID, status, reason, liveSince(c))
	}
}

// vanished asks the agent whether the container is gone. The list the
// row was compared with was taken before the row was read, so a create that
// finished in between has a container the list does not show: only the
// agent's "not found" now says it vanished.
func (r *Reconciler) vanished(ctx context.Context, client *agentclient.Client, containerID string) bool {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := client.Inspect(ictx, containerID)
	return errors.Is(err, agentclient.ErrNotFound)
}

// orphan handles a berth container no record accounts for.
func (r *Reconciler) orphan(ctx context.Context, client *agentclient.Client, serverID string, c wire.Container) {
	key := serverID + "/" + c.ID
	first, seen := r.orphans.LoadOrStore(key, time.Now())
	if !seen {
		r.log.Warn("orphan container", "server", serverID, "container", c.Name, "workspace_id", c.Labels[wire.LabelWorkspaceID])
		r.event(ctx, registry.Event{Kind: "workspace.orphan", ServerID: serverID, WorkspaceID: c.Labels[wire.LabelWorkspaceID],
			Message: fmt.Sprintf("container %s has no record here; stopped now, removed after %s", c.Name, r.cfg.OrphanGrace)})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if c.State == "running" {
		if err := client.Stop(cctx, c.ID, 10*time.Second); err != nil {
			r.log.Warn("stop orphan", "container", c.Name, "error", err)
		}
	}
	if time.Since(first.(time.Time)) < r.cfg.OrphanGrace {
		return
	}
	if err := removeContainer(cctx, client, c.ID, 30*time.Second); err != nil {
		r.log.Warn("remove orphan", "container", c.Name, "error", err)
		return
	}
	r.orphans.Delete(key)
	r.event(ctx, registry.Event{Kind: "workspace.orphan_removed", ServerID: serverID, WorkspaceID: c.Labels[wire.LabelWorkspaceID],
		Message: "orphan container " + c.Name + " removed (data kept)"})
}

// forgetOrphans drops the first-seen times of containers no longer there.
func (r *Reconciler) forgetOrphans(serverID string, present map[string]bool) {
	prefix := serverID + "/"
	r.orphans.Range(func(k, _ any) bool {
		key := k.(string)
		if len(key) > len(prefix) && key[:len(prefix)] == prefix && !present[key[len(prefix):]] {
			r.orphans.Delete(k)
		}
		return true
	})
}

func containerEpoch(c wire.Container) int64 {
	n, _ := strconv.ParseInt(c.Labels[wire.LabelEpoch], 10, 64)
	return n
}

// CleanupOnce purges the workspaces marked pending_deletion — container,
// then data directory, then the record and its home — and the homes whose
// owner asked for them to go after their record was deleted, and removes
// the old copies moves left behind. It returns how many workspaces and
// homes it purged. It is the only code that deletes a workspace's data. A
// workspace or home whose agent cannot be reached, or that someone is
// changing, stays for the next round.
func (r *Reconciler) CleanupOnce(ctx context.Context) int {
	pending, err := r.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusPendingDeletion}})
	if err != nil {
		r.log.Warn("cleanup: list", "error", err)
		return 0
	}
	done := 0
	for _, ws := range pending {
		unlock, ok := r.locks.tryLock(ws.ID)
		if !ok {
			continue
		}
		err := r.purgeLocked(ctx, ws)
		unlock()
		if err != nil {
			r.log.Warn("cleanup: will retry", "workspace_id", ws.ID, "error", err)
			continue
		}
		done++
	}
	homes, err := r.DB.ListHomes(ctx, registry.HomeFilter{Purge: true})
	if err != nil {
		r.log.Warn("cleanup: list homes", "error", err)
	}
	for _, h := range homes {
		unlock, ok := r.locks.tryLock(h.WorkspaceID)
		if !ok {
			continue
		}
		err := r.purgeHomeLocked(ctx, h.WorkspaceID)
		unlock()
		if err != nil {
			r.log.Warn("cleanup: home will retry", "workspace_id", h.WorkspaceID, "error", err)
			continue
		}
		done++
	}
	r.removeLeftovers(ctx)
	return done
}

func (r *Reconciler) purgeLocked(ctx context.Context, ws registry.Workspace) error {
	if ws.ServerID != "" && ws.ContainerID != "" {
		s, err := r.DB.GetServer(ctx, ws.ServerID)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := removeContainer(cctx, r.agent(s), ws.ContainerID, 30*time.Second); err != nil {
			return err
		}
	}
	if err := r.removeHomeData(ctx, ws.ID, ws.ServerID); err != nil {
		return err
	}
	if err := r.DB.DeleteWorkspace(ctx, ws.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	r.activity.forget(ws.ID)
	if err := r.DB.DeleteHome(ctx, ws.ID); err != nil {
		return err
	}
	r.event(ctx, registry.Event{Kind: "workspace.deleted", ServerID: ws.ServerID, WorkspaceID: ws.ID, Message: "container and data removed by cleanup"})
	r.log.Info("workspace purged", "workspace_id", ws.ID, "server", ws.ServerID)
	return nil
}

// purgeHomeLocked removes the data of a home whose record is gone, then the
// home: the id is free for anyone afterwards. A record made meanwhile (the
// owner came back) cancelled the purge.
func (r *Reconciler) purgeHomeLocked(ctx context.Context, id string) error {
	h, err := r.DB.GetHome(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if !h.Purge {
		return nil
	}
	if _, err := r.DB.GetWorkspace(ctx, id); err == nil {
		return nil
	}
	if err := r.removeHomeData(ctx, id, ""); err != nil {
		return err
	}
	if err := r.DB.DeleteHome(ctx, id); err != nil {
		return err
	}
	r.event(ctx, registry.Event{Kind: "home.deleted", ServerID: h.ServerID, WorkspaceID: id, Message: "home directory removed by cleanup"})
	r.log.Info("home purged", "workspace_id", id, "server", h.ServerID)
	return nil
}

// removeHomeData removes the data directory of id where its home lives;
// copies elsewhere (an interrupted move's target) become leftovers. A lost
// home has nothing left to remove. An id without a home row (none is
// expected: every placement claims one) has its data removed on
// fallbackServer, its workspace's server, if any.
func (r *Reconciler) removeHomeData(ctx context.Context, id, fallbackServer string) error {
	h, err := r.DB.GetHome(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		h = registry.Home{WorkspaceID: id, ServerID: fallbackServer}
	} else if err != nil {
		return err
	}
	if h.MovingTo != "" {
		if err := r.DB.AddLeftover(ctx, id, h.MovingTo); err != nil {
			return err
		}
	}
	if h.ServerID == "" {
		return nil
	}
	s, err := r.DB.GetServer(ctx, h.ServerID)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.agent(s).RemoveData(cctx, DataDir(id)); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
		return err
	}
	return nil
}

// removeLeftovers removes the old home copies whose servers answer.
func (r *Reconciler) removeLeftovers(ctx context.Context) {
	leftovers, err := r.DB.ListLeftovers(ctx)
	if err != nil {
		r.log.Warn("cleanup: list leftovers", "error", err)
		return
	}
	for _, l := range leftovers {
		unlock, ok := r.locks.tryLock(l.WorkspaceID)
		if !ok {
			continue
		}
		r.removeLeftover(ctx, l)
		unlock()
	}
}
