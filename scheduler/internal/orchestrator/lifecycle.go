package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// Lifecycle drives placed workspaces: stop, restart (which may move the
// workspace through the Placer), delete, mark for deletion, exec, status
// sync, scale (scale.go) and the eviction of a server. Every method that
// changes a workspace holds its lock. Safe for concurrent use.
type Lifecycle struct {
	*core
	placer *Placer
}

// Get returns a workspace without contacting its agent.
func (l *Lifecycle) Get(ctx context.Context, id string) (registry.Workspace, error) {
	ws, err := l.DB.GetWorkspace(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return ws, ErrNotFound
	}
	return ws, err
}

// List returns a user's workspaces, optionally of one session.
func (l *Lifecycle) List(ctx context.Context, userID, sessionID string) ([]registry.Workspace, error) {
	return l.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{UserID: userID, SessionID: sessionID})
}

// Sync refreshes a workspace's status from its container's live state and
// saves it. pending_deletion is sticky; an unreachable agent or a missing
// container leave the status as it is (reconciliation deals with those).
// While someone else holds the workspace (the event watcher recording the
// same change, a lifecycle call), the live status is answered but not
// saved: the holder writes the record, and the caller is not told a state
// the container has already left.
func (l *Lifecycle) Sync(ctx context.Context, ws registry.Workspace) (registry.Workspace, error) {
	if ws.Status == fleet.StatusPendingDeletion || ws.Status == fleet.StatusCreating {
		return ws, nil
	}
	unlock, locked := l.locks.tryLock(ws.ID)
	if locked {
		defer unlock()
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return ws, nil
	}
	ictx, cancel := context.WithTimeout(cctx, 5*time.Second)
	defer cancel()
	ctr, err := client.Inspect(ictx, ws.ContainerID)
	if err != nil {
		l.log.Debug("sync: inspect failed, status unchanged", "workspace_id", ws.ID, "error", err)
		return ws, nil
	}
	status, reason, ok := liveStatus(ctr)
	if !ok || status == ws.Status {
		return ws, nil
	}
	if !locked {
		ws.Status, ws.StatusReason = status, reason
		return ws, nil
	}
	l.setStatusAtLocked(ctx, ws.ID, status, reason, liveSince(ctr))
	return l.Get(ctx, ws.ID)
}

// Stop stops the container (10 s grace) and marks the workspace stopped.
// Like the Python service it always succeeds after the lookup: a Docker
// failure is recorded as the status reason, and the next sync corrects it.
func (l *Lifecycle) Stop(ctx context.Context, ws registry.Workspace) error {
	defer l.locks.lock(ws.ID)()
	ws, err := l.DB.GetWorkspace(ctx, ws.ID)
	if errors.Is(err, registry.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	reason := ""
	if client, cctx, err := l.client(ctx, ws); err == nil {
		sctx, cancel := context.WithTimeout(cctx, 20*time.Second)
		defer cancel()
		if err := client.Stop(sctx, ws.ContainerID, 10*time.Second); err != nil {
			reason = "stop failed: " + err.Error()
			l.log.Warn("stop failed", "workspace_id", ws.ID, "error", err)
		}
	} else if !errors.Is(err, ErrNoContainer) {
		reason = err.Error()
	}
	if ws.Status == fleet.StatusPendingDeletion {
		return nil
	}
	l.setStatusLocked(ctx, ws.ID, fleet.StatusStopped, reason)
	return nil
}

// Restart starts the container again and marks the workspace running. A
// workspace whose server was lost (and is still down), whose server is
// draining, or that has no container any more is moved instead: a new
// container on another server, with a new, empty home (the metadata says
// so: home_reset).
func (l *Lifecycle) Restart(ctx context.Context, ws registry.Workspace) error {
	defer l.locks.lock(ws.ID)()
	ws, err := l.DB.GetWorkspace(ctx, ws.ID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return ErrNotFound
	case err != nil:
		return err
	case ws.ServerID == "":
		return ErrNoContainer
	case ws.Status == fleet.StatusPendingDeletion:
		return ErrMarkedForDeletion
	}
	if l.needsMove(ctx, ws) {
		return l.placer.moveLocked(ctx, ws)
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(cctx, 60*time.Second)
	defer cancel()
	if err := client.Start(sctx, ws.ContainerID); err != nil {
		return err
	}
	started, err := l.DB.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
		if w.Status == fleet.StatusPendingDeletion {
			return ErrMarkedForDeletion
		}
		w.Status, w.StatusReason, w.LastActivity = fleet.StatusRunning, "", time.Now().UTC()
		l.gitPendingLocked(w) // a clone removed meanwhile is made again
		return nil
	})
	if err == nil {
		l.gitLaunched(started)
	}
	if err == nil && ws.Status != fleet.StatusRunning {
		l.notify(ctx, ws.ID)
	}
	return err
}

// needsMove tells whether a restart must place the workspace anew.
func (l *Lifecycle) needsMove(ctx context.Context, ws registry.Workspace) bool {
	s, err := l.DB.GetServer(ctx, ws.ServerID)
	if err != nil {
		return true
	}
	if s.State == fleet.StateDraining || (ws.ContainerID == "" && ws.Status != fleet.StatusCreating) {
		return true
	}
	if ws.Status == fleet.StatusError && ws.StatusReason == ReasonServerLost && l.Down != nil {
		_, down := l.Down.DownSince(ws.ServerID)
		return down
	}
	return false
}

// Delete removes the container and the record; the data directory stays
// (contract §3.6). A container that cannot be removed now is left to
// reconciliation, which removes unrecorded containers.
func (l *Lifecycle) Delete(ctx context.Context, ws registry.Workspace) error {
	defer l.locks.lock(ws.ID)()
	return l.deleteLocked(ctx, ws.ID, "")
}

// deleteLocked removes a workspace's container where its agent answers,
// then its record; why, when set, is told to the notifier and the events
// as the workspace's last status (an eviction). The caller holds the lock.
func (l *Lifecycle) deleteLocked(ctx context.Context, id, why string) error {
	ws, err := l.DB.GetWorkspace(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if client, cctx, err := l.client(ctx, ws); err == nil {
		if err := removeContainer(cctx, client, ws.ContainerID, 30*time.Second); err != nil {
			l.log.Warn("remove container failed; reconciliation will retry", "workspace_id", ws.ID, "error", err)
		}
	}
	if why != "" {
		l.setStatusLocked(ctx, ws.ID, fleet.StatusError, why)
	}
	if err := l.DB.DeleteWorkspace(ctx, ws.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	l.activity.forget(ws.ID)
	return nil
}

// MarkForDeletion flags the workspace; the cleanup loop removes container
// and data.
func (l *Lifecycle) MarkForDeletion(ctx context.Context, ws registry.Workspace) error {
	defer l.locks.lock(ws.ID)()
	_, err := l.DB.SetWorkspaceStatus(ctx, ws.ID, fleet.StatusPendingDeletion, "marked for deletion")
	if errors.Is(err, registry.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// MarkHomeForDeletion asks the cleanup loop to remove the home directory
// of an id whose record is gone (DELETE keeps the data); only its owner may.
// Afterwards the id is free for anyone. ErrNotFound when the id has no
// home, or when it is another user's (which is not told).
func (l *Lifecycle) MarkHomeForDeletion(ctx context.Context, id, userID string) error {
	defer l.locks.lock(id)()
	if _, err := l.DB.GetWorkspace(ctx, id); err == nil {
		return ErrExists
	}
	err := l.DB.RequestHomePurge(ctx, id, userID)
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrOwnedByOther) {
		return ErrNotFound
	}
	return err
}

// Heartbeat records activity. It writes only the activity time, which no
// other operation decides on, so it takes no lock.
func (l *Lifecycle) Heartbeat(ctx context.Context, ws registry.Workspace) error {
	return l.touch(ctx, ws.ID)
}

func (l *Lifecycle) touch(ctx context.Context, id string) error {
	now := time.Now()
	l.activity.note(id, now)
	_, err := l.DB.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error {
		w.LastActivity = now.UTC()
		return nil
	})
	if errors.Is(err, registry.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// EvictServer removes every workspace of a server that is about to be
// deleted: refused with a *ServerInUseError while it has workspaces unless
// force is set; otherwise the server is cordoned (nothing new lands there)
// and each workspace, under its lock, loses its container (where the agent
// answers; data is kept) and its record, with an event and a status
// notification. It returns how many workspaces it removed.
func (l *Lifecycle) EvictServer(ctx context.Context, serverID string, force bool) (int, error) {
	if !force {
		rows, err := l.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: serverID})
		if err != nil {
			return 0, err
		}
		if len(rows) > 0 {
			return 0, &ServerInUseError{ServerID: serverID, Workspaces: len(rows)}
		}
		return 0, nil
	}
	// Cordon first, then list: a create that reserved before the cordon is
	// in the list, and none can reserve after it.
	cordoned := fleet.StateCordoned
	if _, err := l.DB.UpdateServer(ctx, serverID, registry.ServerPatch{State: &cordoned}); err != nil {
		return 0, err
	}
	rows, err := l.DB.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: serverID})
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, ws := range rows {
		unlock := l.locks.lock(ws.ID)
		err := l.deleteLocked(ctx, ws.ID, "server removed by an operator")
		unlock()
		if err != nil {
			return removed, err
		}
		removed++
		l.event(ctx, registry.Event{Kind: "workspace.evicted", ServerID: serverID, WorkspaceID: ws.ID,
			Message: "server removed by an operator: container removed, record dropped (data kept)"})
	}
	l.log.Warn("server evicted", "server", serverID, "workspaces", removed)
	return removed, nil
}

func execRequest(ws registry.Workspace, req ExecRequest) (wire.ExecRequest, error) {
	if ws.ServerID == "" || ws.ContainerID == "" {
		return wire.ExecRequest{}, ErrNoContainer
	}
	if ws.Status != fleet.StatusRunning {
		return wire.ExecRequest{}, fmt.Errorf("%w (status: %s)", ErrNotRunning, ws.Status)
	}
	user, dir := req.User, req.WorkingDir
	if user == "" {
		user = "dev"
	}
	if dir == "" {
		dir = "/home/dev"
	}
	return wire.ExecRequest{
		Cmd: []string{"bash", "-c", req.Command}, User: user, WorkingDir: dir,
		Stdin: req.Stdin, TimeoutSeconds: max(1, int(req.Timeout/time.Second)),
	}, nil
}

// agentError classifies an agent failure of an exec or a stream: an agent
// that cannot be reached or is unavailable is ErrServerUnavailable.
func agentError(err error) error {
	if errors.Is(err, agentclient.ErrUnreachable) || errors.Is(err, agentclient.ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrServerUnavailable, err)
	}
	return err
}

// Exec runs a command in a running workspace and returns its output.
func (l *Lifecycle) Exec(ctx context.Context, ws registry.Workspace, req ExecRequest) (ExecResult, error) {
	wreq, err := execRequest(ws, req)
	if err != nil {
		return ExecResult{}, err
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return ExecResult{}, err
	}
	res, err := client.Exec(cctx, ws.ContainerID, wreq)
	if err != nil {
		return ExecResult{}, agentError(err)
	}
	_ = l.touch(ctx, ws.ID)
	return ExecResult{ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr, TimedOut: res.TimedOut,
		StdoutDropped: res.StdoutDropped, StderrDropped: res.StderrDropped}, nil
}

// ExecStream runs a command and hands each output chunk to onOutput as the
// process writes it. Each chunk is newly allocated (decoded from its own
// frame) and never reused: onOutput may keep it.
func (l *Lifecycle) ExecStream(ctx context.Context, ws registry.Workspace, req ExecRequest, onOutput func(stream string, data []byte) error) (ExecResult, error) {
	wreq, err := execRequest(ws, req)
	if err != nil {
		return ExecResult{}, err
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return ExecResult{}, err
	}
	final, err := client.ExecStream(cctx, ws.ContainerID, wreq, func(f wire.ExecFrame) error {
		return onOutput(f.Stream, f.Data)
	})
	if err != nil {
		return ExecResult{}, agentError(err)
	}
	if final.Error != "" {
		return ExecResult{}, errors.New(final.Error)
	}
	_ = l.touch(ctx, ws.ID)
	return ExecResult{ExitCode: final.ExitCode, TimedOut: final.TimedOut}, nil
}

// Resources samples the container's resource use.
func (l *Lifecycle) Resources(ctx context.Context, ws registry.Workspace) (wire.ContainerStats, error) {
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return wire.ContainerStats{}, err
	}
	sctx, cancel := context.WithTimeout(cctx, 10*time.Second)
	defer cancel()
	return client.Stats(sctx, ws.ContainerID)
}
