package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// Get returns a workspace without contacting its agent.
func (o *Orchestrator) Get(ctx context.Context, id string) (registry.Workspace, error) {
	ws, err := o.db.GetWorkspace(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return ws, ErrNotFound
	}
	return ws, err
}

// List returns a user's workspaces, optionally of one session.
func (o *Orchestrator) List(ctx context.Context, userID, sessionID string) ([]registry.Workspace, error) {
	return o.db.ListWorkspaces(ctx, registry.WorkspaceFilter{UserID: userID, SessionID: sessionID})
}

// client returns the agent client of the workspace's server, and ctx
// carrying the workspace's fencing epoch for every call made with it.
func (o *Orchestrator) client(ctx context.Context, ws registry.Workspace) (*agentclient.Client, context.Context, error) {
	if ws.ServerID == "" || ws.ContainerID == "" {
		return nil, ctx, ErrNoContainer
	}
	s, err := o.db.GetServer(ctx, ws.ServerID)
	if err != nil {
		return nil, ctx, fmt.Errorf("%w: %v", ErrServerUnavailable, err)
	}
	return o.agents.Client(s.ID, AgentAddr(s)), agentclient.WithEpoch(ctx, ws.Epoch), nil
}

// StatusFromDocker maps a Docker state to a workspace status as a request
// sync does (contract §8.2, "on request" column); ok is false when the
// status stays as it is.
func StatusFromDocker(state string) (registry.Status, bool) {
	switch state {
	case "running":
		return registry.StatusRunning, true
	case "exited", "stopped":
		return registry.StatusStopped, true
	case "dead", "removing":
		return registry.StatusError, true
	}
	return "", false
}

// liveStatus is the status a container's state means, with the reason
// recorded for it; an OOM-killed container is an error, not a stop.
func liveStatus(c wire.Container) (registry.Status, string, bool) {
	if c.OOMKilled && c.State != "running" {
		return registry.StatusError, "container was OOM-killed", true
	}
	status, ok := StatusFromDocker(c.State)
	return status, "container " + c.State, ok
}

// Sync refreshes a workspace's status from its container's live state and
// saves it. pending_deletion is sticky; an unreachable agent or a missing
// container leaves the status as it is (reconciliation deals with those).
func (o *Orchestrator) Sync(ctx context.Context, ws registry.Workspace) (registry.Workspace, error) {
	if ws.Status == registry.StatusPendingDeletion || ws.Status == registry.StatusCreating {
		return ws, nil
	}
	client, ctx, err := o.client(ctx, ws)
	if err != nil {
		return ws, nil
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ctr, err := client.Inspect(ictx, ws.ContainerID)
	if err != nil {
		o.log.Debug("sync: inspect failed, status unchanged", "workspace_id", ws.ID, "error", err)
		return ws, nil
	}
	status, reason, ok := liveStatus(ctr)
	if !ok || status == ws.Status {
		return ws, nil
	}
	o.setStatus(ctx, ws.ID, status, reason)
	return o.Get(ctx, ws.ID)
}

// Stop stops the container (10 s grace) and marks the workspace stopped.
// Like the Python service it always succeeds after the lookup: a Docker
// failure is recorded as the status reason, and the next sync corrects it.
func (o *Orchestrator) Stop(ctx context.Context, ws registry.Workspace) error {
	reason := ""
	if client, ctx, err := o.client(ctx, ws); err == nil {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := client.Stop(sctx, ws.ContainerID, 10*time.Second); err != nil {
			reason = "stop failed: " + err.Error()
			o.log.Warn("stop failed", "workspace_id", ws.ID, "error", err)
		}
	} else if !errors.Is(err, ErrNoContainer) {
		reason = err.Error()
	}
	if ws.Status == registry.StatusPendingDeletion {
		return nil
	}
	_, err := o.db.SetWorkspaceStatus(ctx, ws.ID, registry.StatusStopped, reason)
	return err
}

// Restart starts the container again and marks the workspace running. A
// workspace whose server was lost (and is still down), whose server is
// draining, or that has no container any more is re-placed instead: a new
// container on a healthy server, with a new, empty home (the metadata says
// so: home_reset).
func (o *Orchestrator) Restart(ctx context.Context, ws registry.Workspace) error {
	if ws.ServerID == "" {
		return ErrNoContainer
	}
	if ws.Status == registry.StatusPendingDeletion {
		return ErrMarkedForDeletion
	}
	if o.needsMove(ctx, ws) {
		return o.replace(ctx, ws)
	}
	client, ctx, err := o.client(ctx, ws)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := client.Start(sctx, ws.ContainerID); err != nil {
		return err
	}
	_, err = o.db.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
		if w.Status == registry.StatusPendingDeletion {
			return ErrMarkedForDeletion
		}
		w.Status, w.StatusReason, w.LastActivity = registry.StatusRunning, "", time.Now().UTC()
		return nil
	})
	return err
}

func (o *Orchestrator) needsMove(ctx context.Context, ws registry.Workspace) bool {
	s, err := o.db.GetServer(ctx, ws.ServerID)
	if err != nil {
		return true
	}
	if s.State == registry.ServerDraining || (ws.ContainerID == "" && ws.Status != registry.StatusCreating) {
		return true
	}
	if ws.Status == registry.StatusError && ws.StatusReason == ReasonServerLost && o.down != nil {
		_, down := o.down.DownSince(ws.ServerID)
		return down
	}
	return false
}

// replace moves a workspace to another server and starts a new container
// there, trying candidates in placement order like Create.
func (o *Orchestrator) replace(ctx context.Context, ws registry.Workspace) error {
	ctx = context.WithoutCancel(ctx)
	defer o.markBusy(ws.ID)()
	cr := CreateRequest{UserID: ws.UserID, SessionID: ws.SessionID, WorkspaceID: ws.ID, Config: configFromRow(ws)}
	req, spec := o.Request(cr.Config)
	req.Sequence = o.rrSeq.Add(1) - 1
	snap, err := o.Snapshot(ctx)
	if err != nil {
		return err
	}
	for i := range snap.Nodes { // never back onto the server it is leaving
		if snap.Nodes[i].ID == ws.ServerID {
			snap.Nodes[i].Health = "unreachable"
		}
	}
	dec, err := placement.Place(snap.Nodes, req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPlacement, err)
	}
	oldServer, oldContainer := ws.ServerID, ws.ContainerID
	o.retire(ctx, oldServer, oldContainer) // never two copies: the old one goes first, if its agent answers
	var lastErr error
	for _, cand := range dec.Candidates {
		server, _ := snap.Server(cand.NodeID)
		node, _ := snap.Node(cand.NodeID)
		moved, err := o.db.MoveWorkspace(ctx, ws.ID, server.ID, limits(node))
		if err != nil {
			lastErr = err
			continue
		}
		client := o.agents.Client(server.ID, AgentAddr(server))
		cctx, cancel := context.WithTimeout(ctx, o.opts.CreateTimeout)
		ctr, err := client.Create(cctx, o.containerSpec(moved, cr, spec, node))
		cancel()
		if err != nil {
			lastErr = agentCreateError(err, moved.Image, server.ID)
			o.setStatus(ctx, ws.ID, registry.StatusError, "re-placement failed: "+err.Error())
			continue
		}
		_, err = o.db.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
			w.Status, w.StatusReason, w.ContainerID, w.LastActivity = registry.StatusRunning, "", ctr.ID, time.Now().UTC()
			if w.Metadata == nil {
				w.Metadata = map[string]any{}
			}
			acknowledge(w)
			w.Metadata["home_reset"] = true
			w.Metadata["previous_server_id"] = oldServer
			w.Metadata["replaced_at"] = time.Now().UTC().Format(time.RFC3339)
			return nil
		})
		if err != nil {
			return err
		}
		o.log.Info("workspace re-placed with a new home", "workspace_id", ws.ID, "from", oldServer, "to", server.ID)
		o.event(ctx, registry.Event{Kind: "workspace.replaced", ServerID: server.ID, WorkspaceID: ws.ID,
			Message: fmt.Sprintf("re-placed from %s to %s; the home directory is new", oldServer, server.ID)})
		return nil
	}
	if lastErr == nil {
		lastErr = ErrCreateFailed
	}
	return lastErr
}

// retire removes the container a workspace left behind on its old server,
// if that server answers; otherwise reconciliation stops and removes it when
// the server is back. The old home directory is kept.
func (o *Orchestrator) retire(ctx context.Context, serverID, containerID string) {
	if containerID == "" {
		return
	}
	s, err := o.db.GetServer(ctx, serverID)
	if err != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := o.agents.Client(s.ID, AgentAddr(s)).Remove(rctx, containerID, true); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
		o.log.Info("old container not removed now; reconciliation will", "server", serverID, "error", err)
	}
}

// configFromRow rebuilds the create config of a workspace from its record.
func configFromRow(ws registry.Workspace) WorkspaceConfig {
	var raw struct {
		GitBranch        string `json:"git_branch"`
		GitCredentials   string `json:"git_credentials"`
		GitName          string `json:"git_name"`
		GitEmail         string `json:"git_email"`
		BaseImage        string `json:"base_image"`
		RegionPreference string `json:"region_preference"`
	}
	_ = json.Unmarshal(ws.Config, &raw)
	return WorkspaceConfig{Tier: ws.Tier, Repos: ws.Repositories, Environment: ws.Environment,
		GitBranch: raw.GitBranch, GitCredentials: raw.GitCredentials, GitName: raw.GitName, GitEmail: raw.GitEmail,
		BaseImage: raw.BaseImage, RegionPreference: raw.RegionPreference, Raw: ws.Config}
}

// Delete removes the container and the record; the data directory stays
// (contract §3.6). A container that cannot be removed now is left to
// reconciliation, which removes unrecorded containers.
func (o *Orchestrator) Delete(ctx context.Context, ws registry.Workspace) error {
	defer o.markBusy(ws.ID)()
	if client, ctx, err := o.client(ctx, ws); err == nil {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := client.Remove(rctx, ws.ContainerID, true); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
			o.log.Warn("remove container failed; reconciliation will retry", "workspace_id", ws.ID, "error", err)
		}
	}
	err := o.db.DeleteWorkspace(ctx, ws.ID)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	return err
}

// MarkForDeletion flags the workspace; the cleanup loop removes container
// and data.
func (o *Orchestrator) MarkForDeletion(ctx context.Context, ws registry.Workspace) error {
	_, err := o.db.SetWorkspaceStatus(ctx, ws.ID, registry.StatusPendingDeletion, "marked for deletion")
	if errors.Is(err, registry.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// Heartbeat records activity.
func (o *Orchestrator) Heartbeat(ctx context.Context, ws registry.Workspace) error {
	return o.touch(ctx, ws.ID)
}

func (o *Orchestrator) touch(ctx context.Context, id string) error {
	_, err := o.db.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error {
		w.LastActivity = time.Now().UTC()
		return nil
	})
	if errors.Is(err, registry.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func (o *Orchestrator) execRequest(ws registry.Workspace, req ExecRequest) (wire.ExecRequest, error) {
	if ws.ServerID == "" || ws.ContainerID == "" {
		return wire.ExecRequest{}, ErrNoContainer
	}
	if ws.Status != registry.StatusRunning {
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

// execError classifies an agent failure of an exec.
func execError(err error) error {
	if errors.Is(err, agentclient.ErrUnreachable) || errors.Is(err, agentclient.ErrUnavailable) {
		return fmt.Errorf("%w: %v", ErrServerUnavailable, err)
	}
	return err
}

// Exec runs a command in a running workspace and returns its output.
func (o *Orchestrator) Exec(ctx context.Context, ws registry.Workspace, req ExecRequest) (ExecResult, error) {
	wreq, err := o.execRequest(ws, req)
	if err != nil {
		return ExecResult{}, err
	}
	client, ctx, err := o.client(ctx, ws)
	if err != nil {
		return ExecResult{}, err
	}
	res, err := client.Exec(ctx, ws.ContainerID, wreq)
	if err != nil {
		return ExecResult{}, execError(err)
	}
	_ = o.touch(ctx, ws.ID)
	return ExecResult{ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr, TimedOut: res.TimedOut}, nil
}

// ExecStream runs a command and hands each output chunk to onOutput as the
// process writes it.
func (o *Orchestrator) ExecStream(ctx context.Context, ws registry.Workspace, req ExecRequest, onOutput func(stream string, data []byte) error) (ExecResult, error) {
	wreq, err := o.execRequest(ws, req)
	if err != nil {
		return ExecResult{}, err
	}
	client, ctx, err := o.client(ctx, ws)
	if err != nil {
		return ExecResult{}, err
	}
	final, err := client.ExecStream(ctx, ws.ContainerID, wreq, func(f wire.ExecFrame) error {
		return onOutput(f.Stream, f.Data)
	})
	if err != nil {
		return ExecResult{}, execError(err)
	}
	if final.Error != "" {
		return ExecResult{}, errors.New(final.Error)
	}
	_ = o.touch(ctx, ws.ID)
	return ExecResult{ExitCode: final.ExitCode, TimedOut: final.TimedOut}, nil
}

// Resources samples the container's resource use.
func (o *Orchestrator) Resources(ctx context.Context, ws registry.Workspace) (wire.ContainerStats, error) {
	client, ctx, err := o.client(ctx, ws)
	if err != nil {
		return wire.ContainerStats{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return client.Stats(sctx, ws.ContainerID)
}
