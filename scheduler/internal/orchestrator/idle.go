package orchestrator

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
)

// Idle stop: a running workspace nobody has used for its idle limit is
// stopped (not deleted), with an event and a status notification.
//
// Use is: exec and exec-stream, file calls, heartbeats and restarts (they
// write last_activity), terminal input and output, preview and WebSocket
// proxy traffic (NoteActivity: in memory, no I/O per byte), and CPU use
// above IdleCPUPercent, measured by the agent only for a workspace about to
// be stopped. The limit is the workspace's own (timeout_hours at create,
// registry.Settings.IdleTimeoutHours) or Config.IdleTimeout; 0 = never.

// EventIdleStopped is the event of an idle stop.
const EventIdleStopped = "workspace.idle_stopped"

// idleCPUCandidates bounds the CPU samples one pass takes at once (each
// takes about a second on the agent).
const idleCPUCandidates = 8

// activity is the last use of each workspace seen by the streams, which do
// not write the registry per byte. Safe for concurrent use.
type activity struct{ m sync.Map } // id → *atomic.Int64 (unix nanos)

func (a *activity) note(id string, t time.Time) {
	v, ok := a.m.Load(id)
	if !ok {
		v, _ = a.m.LoadOrStore(id, new(atomic.Int64))
	}
	n := v.(*atomic.Int64)
	for { // never backwards
		old := n.Load()
		if t.UnixNano() <= old || n.CompareAndSwap(old, t.UnixNano()) {
			return
		}
	}
}

// forget drops a workspace that is gone.
func (a *activity) forget(id string) { a.m.Delete(id) }

func (a *activity) last(id string) time.Time {
	if v, ok := a.m.Load(id); ok {
		return time.Unix(0, v.(*atomic.Int64).Load())
	}
	return time.Time{}
}

// NoteActivity records that someone is using the workspace now (a
// terminal's bytes, a proxied request or message). It does no I/O: the
// idle pass reads it, and writes it to last_activity now and then.
func (l *Lifecycle) NoteActivity(id string) { l.activity.note(id, time.Now()) }

// IdleLimit is how long the workspace may go unused before it is stopped;
// 0 = never.
func (c *core) IdleLimit(ws registry.Workspace) time.Duration {
	if h := ws.Settings.IdleTimeoutHours; h > 0 {
		return time.Duration(h) * time.Hour
	}
	return c.cfg.IdleTimeout
}

// LastUse is the later of the workspace's recorded last activity and the
// use the streams noted since.
func (c *core) LastUse(ws registry.Workspace) time.Time {
	last := ws.LastActivity
	if t := c.activity.last(ws.ID); t.After(last) {
		last = t
	}
	return last
}

// IdleStopAt is when a running workspace will be stopped if nobody uses it
// meanwhile; ok is false when it has no idle limit or does not run.
func (c *core) IdleStopAt(ws registry.Workspace) (time.Time, bool) {
	limit := c.IdleLimit(ws)
	if limit <= 0 || ws.Status != fleet.StatusRunning {
		return time.Time{}, false
	}
	return c.LastUse(ws).Add(limit), true
}

// IdleOnce stops the running workspaces idle past their limit and returns
// how many it stopped. Workspaces whose streams were used since the
// registry last heard of it get that written (so last_activity stays
// roughly true); those past the limit are sampled for CPU first, and a busy
// one counts as used.
func (r *Reconciler) IdleOnce(ctx context.Context) int {
	running, err := r.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusRunning}})
	if err != nil {
		r.log.Warn("idle: list", "error", err)
		return 0
	}
	now := time.Now()
	var candidates []registry.Workspace
	for _, ws := range running {
		at, ok := r.IdleStopAt(ws)
		switch {
		case !ok:
		case now.Before(at):
			if last := r.activity.last(ws.ID); last.Sub(ws.LastActivity) > r.cfg.IdleCheckInterval*10 {
				r.recordUse(ctx, ws.ID, last)
			}
		default:
			candidates = append(candidates, ws)
		}
	}
	var stopped atomic.Int32
	sem := make(chan struct{}, idleCPUCandidates)
	var wg sync.WaitGroup
	for _, ws := range candidates {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if r.busy(ctx, ws) {
				r.recordUse(ctx, ws.ID, time.Now())
				return
			}
			if r.stopIdle(ctx, ws) {
				stopped.Add(1)
			}
		})
	}
	wg.Wait()
	return int(stopped.Load())
}

// busy samples the workspace's CPU; a sample that fails counts as idle.
func (r *Reconciler) busy(ctx context.Context, ws registry.Workspace) bool {
	if r.cfg.IdleCPUPercent <= 0 {
		return false
	}
	client, cctx, err := r.client(ctx, ws)
	if err != nil {
		return false
	}
	sctx, cancel := context.WithTimeout(cctx, 10*time.Second)
	defer cancel()
	st, err := client.Stats(sctx, ws.ContainerID)
	if err != nil {
		r.log.Debug("idle: cpu sample failed", "workspace_id", ws.ID, "error", err)
		return false
	}
	return st.CPUPercent >= r.cfg.IdleCPUPercent
}

// recordUse writes a use the registry has not seen as last_activity.
func (r *Reconciler) recordUse(ctx context.Context, id string, at time.Time) {
	r.activity.note(id, at)
	_, err := r.DB.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error {
		if at.After(w.LastActivity) {
			w.LastActivity = at.UTC()
		}
		return nil
	})
	if err != nil {
		r.log.Debug("idle: record use", "workspace_id", id, "error", err)
	}
}

// stopIdle stops a workspace that is still running and still idle, under
// its lock (a workspace someone is changing is left for the next pass).
func (r *Reconciler) stopIdle(ctx context.Context, ws registry.Workspace) bool {
	unlock, ok := r.locks.tryLock(ws.ID)
	if !ok {
		return false
	}
	defer unlock()
	ws, err := r.DB.GetWorkspace(ctx, ws.ID)
	if err != nil {
		return false
	}
	at, ok := r.IdleStopAt(ws)
	if !ok || time.Now().Before(at) {
		return false
	}
	idle := time.Since(r.LastUse(ws)).Round(time.Second)
	reason := fmt.Sprintf("idle: no activity for %s (limit %s)", idle, r.IdleLimit(ws))
	if client, cctx, err := r.client(ctx, ws); err == nil {
		sctx, cancel := context.WithTimeout(cctx, 20*time.Second)
		err = client.Stop(sctx, ws.ContainerID, 10*time.Second)
		cancel()
		if err != nil {
			r.log.Warn("idle: stop failed; the next pass retries", "workspace_id", ws.ID, "error", err)
			return false
		}
	} else {
		return false
	}
	r.setStatusLocked(ctx, ws.ID, fleet.StatusStopped, reason)
	r.event(ctx, registry.Event{Kind: EventIdleStopped, ServerID: ws.ServerID, WorkspaceID: ws.ID, Message: reason,
		Data: map[string]any{"idle_seconds": idle.Seconds(), "limit_seconds": r.IdleLimit(ws).Seconds()}})
	r.log.Info("workspace stopped: idle", "workspace_id", ws.ID, "idle", idle)
	return true
}

// IdleStopAt is core.IdleStopAt for the HTTP layers (the parts share one
// core; this picks it).
func (o *Orchestrator) IdleStopAt(ws registry.Workspace) (time.Time, bool) {
	return o.Lifecycle.IdleStopAt(ws)
}
