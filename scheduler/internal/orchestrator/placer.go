package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// Placer decides where a workspace runs and starts it there: Create for a
// new workspace, move for one that must leave its server. Both go through
// launch. Safe for concurrent use.
type Placer struct {
	*core
	rrSeq   atomic.Uint64 // the round-robin counter placement takes as input
	flights *flights      // creates under way, shared by concurrent callers
}

// Request turns a tier and config into a placement request.
func (p *Placer) Request(cfg WorkspaceConfig) (placement.Request, tiers.Spec) {
	spec := p.Tiers.Resolve(cfg.Tier)
	return placement.Request{
		Resources:    spec.Resources(),
		GPU:          spec.NeedsGPU(),
		GPUType:      spec.GPUType,
		Architecture: spec.Architecture,
		Region:       cfg.Settings.RegionPreference,
		Strategy:     p.cfg.Strategy,
	}, spec
}

// Create places and starts a workspace. It is idempotent per workspace id:
// the same owner gets the existing workspace back, another owner
// ErrOwnedByOther (also when only the id's home directory is left: it stays
// its owner's until mark-for-deletion removes it). Concurrent creates of one
// id share one outcome: each waits for the create under way and gets its
// running workspace or its error, never a half-made one. The work runs to
// its end even if ctx is cancelled (a client that hangs up must not leave a
// half-made workspace; ctx's values are kept); a caller that gives up
// waiting gets ctx's error.
func (p *Placer) Create(ctx context.Context, r CreateRequest) (registry.Workspace, error) {
	if r.WorkspaceID == "" {
		r.WorkspaceID = uuid.NewString()
	}
	if err := checkEnvironment(r.Config.Environment, p.Tiers.Resolve(r.Config.Tier).NeedsGPU()); err != nil {
		return registry.Workspace{}, err
	}
	for {
		f, leader := p.flights.join(r.WorkspaceID, r.UserID)
		if leader {
			ws, err := p.create(context.WithoutCancel(ctx), r)
			p.flights.land(r.WorkspaceID, f, ws, err)
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return registry.Workspace{}, ctx.Err()
		}
		if errors.Is(f.err, ErrOwnedByOther) && f.userID != r.UserID {
			continue // refused for the other caller's sake: try as ourselves
		}
		if f.err != nil {
			return registry.Workspace{}, f.err
		}
		return owned(f.ws, r.UserID)
	}
}

// create is one create of r.WorkspaceID, run by the first of its
// concurrent callers. It returns the workspace as stored, whoever owns it
// (Create checks the owner for each caller).
func (p *Placer) create(ctx context.Context, r CreateRequest) (registry.Workspace, error) {
	defer p.locks.lock(r.WorkspaceID)()
	if ws, err := p.DB.GetWorkspace(ctx, r.WorkspaceID); err == nil {
		return p.existing(ctx, ws, r.UserID)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return registry.Workspace{}, err
	}
	home, hasHome, err := p.homeOf(ctx, r.WorkspaceID, r.UserID)
	if err != nil {
		return registry.Workspace{}, err
	}

	var homePtr *registry.Home
	if hasHome {
		homePtr = &home
	}
	req, spec := p.Request(r.Config)
	req.HomeServerID = home.ServerID
	snap, dec, err := p.place(ctx, r.WorkspaceID, req, "")
	if err = checkHomeReachable(snap, dec, err, homePtr); err != nil {
		p.view.release(r.WorkspaceID)
		var perr *PlacementError
		if errors.As(err, &perr) {
			p.event(ctx, registry.Event{Kind: "placement.failed", WorkspaceID: r.WorkspaceID, Message: err.Error(),
				Data: map[string]any{"summary": perr.Summary, "tier": spec.Tier}})
		}
		return registry.Workspace{}, err
	}
	now := time.Now().UTC()
	creds := registry.Credentials{Git: r.Config.GitCredentials}
	ws, err := p.launch(ctx, r.WorkspaceID, snap, dec, req, "", spec, r.Config.Environment, launchSteps{
		home:  homePtr,
		creds: &creds,
		reserve: func(server registry.Server, node placement.Node) (registry.Workspace, error) {
			ws := registry.Workspace{
				ID: r.WorkspaceID, UserID: r.UserID, SessionID: r.SessionID, Tier: r.Config.Tier,
				Port: registry.DefaultPort, ServerID: server.ID, CreatedAt: now, LastActivity: now,
				Image: p.image(r.Config.Settings.BaseImage, spec, server), Repositories: r.Config.Repos,
				Environment: r.Config.Environment, Settings: r.Config.Settings, Reservation: spec.Resources(),
			}
			return p.DB.ReserveAndInsert(ctx, ws, creds, limits(node))
		},
		undo: func(ws registry.Workspace, _ error) {
			if err := p.DB.DeleteWorkspace(ctx, ws.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
				p.log.Error("could not release reservation of failed create", "workspace_id", ws.ID, "error", err)
			}
			if !hasHome { // the claim of a new home goes too; what the agent made is a leftover
				if err := p.DB.ReleaseNewHome(ctx, ws.ID, ws.ServerID); err != nil {
					p.log.Error("could not release the new home of a failed create", "workspace_id", ws.ID, "error", err)
				}
			}
		},
	})
	switch {
	case errors.Is(err, registry.ErrExists): // another scheduler made it meanwhile
		ws, err := p.DB.GetWorkspace(ctx, r.WorkspaceID)
		if err != nil {
			return registry.Workspace{}, err
		}
		return p.existing(ctx, ws, r.UserID)
	case errors.Is(err, registry.ErrOwnedByOther):
		return registry.Workspace{}, ErrOwnedByOther
	case err != nil:
		return registry.Workspace{}, err
	}
	p.log.Info("workspace created", "workspace_id", ws.ID, "server", ws.ServerID, "epoch", ws.Epoch)
	return ws, nil
}

// existing is a create's answer when its id is taken: the workspace as
// stored, or ErrCreateInterrupted for a create whose scheduler stopped (or
// lost the leadership) before answering: concurrent creates of one id in
// this process share a flight, so an unanswered record in creating is
// such a create, and it gets no 201 for a workspace that may never exist.
// Reconciliation adopts its container or drops it. A workspace such a
// create made and reconciliation adopted is acknowledged now that a caller
// is told of it (an interrupted move of it must not drop it).
func (p *Placer) existing(ctx context.Context, ws registry.Workspace, userID string) (registry.Workspace, error) {
	if ws.UserID != userID || !ws.AcknowledgedAt.IsZero() {
		return ws, nil // another's: owned refuses it
	}
	if ws.Status == fleet.StatusCreating {
		return registry.Workspace{}, fmt.Errorf("workspace %s: %w", ws.ID, ErrCreateInterrupted)
	}
	return p.DB.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
		if w.AcknowledgedAt.IsZero() {
			w.AcknowledgedAt = time.Now().UTC()
		}
		return nil
	})
}

func owned(ws registry.Workspace, userID string) (registry.Workspace, error) {
	if ws.UserID != userID {
		return registry.Workspace{}, ErrOwnedByOther
	}
	return ws, nil
}

// Explain is a dry run of placement: how a workspace with cfg would be
// placed right now, with every server's reason or score. Nothing is
// reserved, and the round-robin counter does not move.
func (p *Placer) Explain(ctx context.Context, cfg WorkspaceConfig) (placement.Decision, error) {
	req, _ := p.Request(cfg)
	req.Sequence = p.rrSeq.Load()
	snap, err := p.Snapshot(ctx)
	if err != nil {
		return placement.Decision{}, err
	}
	if len(snap.Nodes) == 0 {
		return placement.Decision{}, ErrNoServers
	}
	return placement.Place(snap.Nodes, req)
}

// place ranks the servers for req from the fleet in memory (fleetView),
// leaving out the server avoid (the one a moving workspace leaves), and
// holds req's resources on the chosen one for workspace id until launch
// reserves it (or the caller calls view.release). The snapshot holds the
// candidates and the home server. A failure is ErrNoServers or a
// *PlacementError.
func (p *Placer) place(ctx context.Context, id string, req placement.Request, avoid string) (Snapshot, placement.Decision, error) {
	req.Sequence = p.rrSeq.Add(1) - 1
	strategy := string(placement.ParseStrategy(string(req.Strategy)))
	start := time.Now()
	if err := p.view.ensure(ctx); err != nil {
		return Snapshot{}, placement.Decision{}, err
	}
	if p.view.index.Len() == 0 {
		p.observe("no_servers", strategy, start)
		return Snapshot{}, placement.Decision{}, ErrNoServers
	}
	dec, err := p.view.index.Place(req, p.live(avoid), req.Resources)
	p.observe(placementResult(err), strategy, start)
	if err == nil {
		p.view.held(id, dec.Chosen.NodeID, req.Resources)
	}
	ids := []string{req.HomeServerID}
	for _, c := range dec.Candidates {
		ids = append(ids, c.NodeID)
	}
	snap, serr := p.view.snapshot(ctx, ids, avoid)
	if err != nil {
		return snap, dec, &PlacementError{Cause: err, Region: req.Region, Summary: dec.Summary()}
	}
	if serr != nil {
		p.view.release(id)
		return snap, dec, serr
	}
	return snap, dec, nil
}

func (p *Placer) observe(result, strategy string, start time.Time) {
	if p.Observer != nil {
		p.Observer.Placement(result, strategy, time.Since(start))
	}
}

func placementResult(err error) string {
	switch {
	case err == nil:
		return "placed"
	case errors.Is(err, placement.ErrNoHealthyServers):
		return "no_healthy_servers"
	case errors.Is(err, placement.ErrNoRegionCapacity):
		return "no_region_capacity"
	case errors.Is(err, placement.ErrNoCapacity):
		return "no_capacity"
	}
	return "failed"
}

// launchSteps are what differs between a create and a move.
type launchSteps struct {
	// home is the workspace's home as it was before the reservation; nil
	// for an id that had none (see bringHome).
	home *registry.Home
	// creds are the workspace's credentials when the caller has them (a
	// create); nil: launch reads them from the registry.
	creds *registry.Credentials
	// reserve holds room on server for the workspace (a new row, or the
	// row moved) and returns the row as stored, with its new epoch.
	reserve func(server registry.Server, node placement.Node) (registry.Workspace, error)
	// undo runs after the agent failed on ws (any container it made is
	// already removed); why is the agent's error.
	undo func(ws registry.Workspace, why error)
	// finish adds to the write that records the running container; h says
	// what happened to the home.
	finish func(w *registry.Workspace, h homeOutcome)
}

// launch tries the decision's candidates in order: hold room in memory
// (place held the first; a later one is skipped if it lost its room), reserve, then the agent
// creates and starts the container, then the row records it as running and
// acknowledged. A candidate that lost its room meanwhile (another create,
// an operator's drain) is skipped; an agent failure removes what the agent
// may have made when its answer was lost, undoes the reservation, records a
// placement.retry event and tries the next candidate. The caller holds the
// workspace's lock.
func (p *Placer) launch(ctx context.Context, id string, snap Snapshot, dec placement.Decision, req placement.Request,
	avoid string, spec tiers.Spec, env map[string]string, steps launchSteps) (registry.Workspace, error) {
	var lastErr error
	for i, cand := range dec.Candidates {
		server, _ := snap.Server(cand.NodeID)
		node, _ := snap.Node(cand.NodeID)
		if i > 0 {
			if !p.view.index.Hold(cand.NodeID, req, p.live(avoid), req.Resources) {
				if lastErr == nil {
					lastErr = &PlacementError{Cause: placement.ErrNoCapacity, Summary: "every candidate was taken by other creates"}
				}
				continue
			}
			p.view.held(id, cand.NodeID, req.Resources)
		}
		ws, err := steps.reserve(server, node)
		// A committed reservation's hold was given back with the commit;
		// a refused one's goes now.
		p.view.release(id)
		switch {
		case errors.Is(err, registry.ErrExists):
			return registry.Workspace{}, err
		case errors.Is(err, registry.ErrInsufficientCapacity), errors.Is(err, registry.ErrServerNotActive), errors.Is(err, registry.ErrNotFound):
			// Another create took the room, or an operator drained or removed
			// the server, between snapshot and reservation.
			p.event(ctx, registry.Event{Kind: "placement.retry", ServerID: server.ID, WorkspaceID: id, Message: err.Error()})
			if lastErr == nil {
				lastErr = &PlacementError{Cause: placement.ErrNoCapacity, Summary: "every candidate was taken by other creates"}
			}
			continue
		case err != nil:
			return registry.Workspace{}, err
		}
		moved, err := p.bringHome(ctx, ws, steps.home, server)
		if err != nil {
			steps.undo(ws, err)
			var unavailable *HomeUnavailableError
			if errors.As(err, &unavailable) {
				return registry.Workspace{}, err // no other server can help: the data is on that one
			}
			p.log.Warn("home move failed on server, trying next", "workspace_id", ws.ID, "server", server.ID, "error", err)
			p.event(ctx, registry.Event{Kind: "placement.retry", ServerID: server.ID, WorkspaceID: ws.ID, Message: err.Error()})
			lastErr = err
			continue
		}
		if moved.from != "" || moved.reset {
			home, err := p.DB.GetHome(ctx, ws.ID)
			if err != nil {
				return registry.Workspace{}, err
			}
			steps.home = &home // on server now: a later candidate copies it from here
		}
		var creds registry.Credentials
		if steps.creds != nil {
			creds = *steps.creds
		} else if creds, err = p.DB.GetCredentials(ctx, ws.ID); err != nil {
			p.log.Warn("read workspace credentials", "workspace_id", ws.ID, "error", err)
		}
		client := p.agent(server)
		actx, cancel := context.WithTimeout(ctx, p.cfg.CreateTimeout)
		ctr, err := client.Create(actx, p.containerSpec(ws, env, creds, spec, node, moved.fresh))
		cancel()
		if err != nil {
			// The agent finishes a create its caller gave up on: when the
			// answer was lost rather than refused, remove what it may have
			// made, by name.
			if errors.Is(err, agentclient.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
				if rerr := removeContainer(ctx, client, ContainerName(ws.ID), 30*time.Second); rerr != nil {
					p.log.Error("could not remove container of failed create; reconciliation will", "workspace_id", ws.ID, "error", rerr)
				}
			}
			steps.undo(ws, err)
			p.log.Warn("create failed on server, trying next", "workspace_id", ws.ID, "server", server.ID, "error", err)
			p.event(ctx, registry.Event{Kind: "placement.retry", ServerID: server.ID, WorkspaceID: ws.ID, Message: err.Error()})
			lastErr = agentCreateError(err, ws.Image, server.ID)
			continue
		}
		p.sandboxEvent(ctx, server.ID, ws.ID, ctr.Sandbox)
		ws, err = p.DB.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
			w.ContainerID, w.LastActivity = ctr.ID, time.Now().UTC()
			if w.Status != fleet.StatusPendingDeletion { // marked while it was being made: stays marked
				w.Status, w.StatusReason = fleet.StatusRunning, ""
			}
			if w.AcknowledgedAt.IsZero() {
				w.AcknowledgedAt = time.Now().UTC()
			}
			if moved.reset {
				if w.Metadata == nil {
					w.Metadata = map[string]any{}
				}
				w.Metadata["home_reset"] = true
			}
			if steps.finish != nil {
				steps.finish(w, moved)
			}
			p.gitPendingLocked(w)
			return nil
		})
		if errors.Is(err, registry.ErrNotLeader) || errors.Is(err, registry.ErrOutcomeUnknown) || errors.Is(err, registry.ErrDiverged) {
			// This scheduler no longer leads (or stopped): the record may even
			// be written. The leader's reconciliation adopts the container or
			// removes it; removing it here could leave a running record
			// without its container.
			return registry.Workspace{}, err
		}
		if err != nil {
			if rerr := removeContainer(ctx, client, ctr.ID, 30*time.Second); rerr != nil {
				p.log.Error("could not remove container of failed create; reconciliation will", "workspace_id", ws.ID, "error", rerr)
			}
			steps.undo(ws, err)
			return registry.Workspace{}, err
		}
		p.gitLaunched(ws)
		return ws, nil
	}
	if lastErr == nil {
		lastErr = ErrCreateFailed
	}
	return registry.Workspace{}, lastErr
}

// moveLocked moves a workspace to another server and starts a new
// container there (restart of a workspace whose server is draining or was
// lost, or that has no container): its home goes with it (bringHome), and
// placement prefers the server that holds it. The caller holds the
// workspace's lock.
func (p *Placer) moveLocked(ctx context.Context, ws registry.Workspace) error {
	ctx = context.WithoutCancel(ctx)
	home, hasHome, err := p.homeOf(ctx, ws.ID, ws.UserID)
	if err != nil {
		return err
	}
	cfg := WorkspaceConfig{Tier: ws.Tier, Repos: ws.Repositories, Environment: ws.Environment, Settings: ws.Settings}
	req, spec := p.Request(cfg)
	avoid := "" // never back onto a server that is down, whatever its health says yet
	if p.Down != nil {
		if _, down := p.Down.DownSince(ws.ServerID); down {
			avoid = ws.ServerID
		}
	}
	var homePtr *registry.Home
	if hasHome {
		homePtr = &home
	}
	req.HomeServerID = home.ServerID
	snap, dec, err := p.place(ctx, ws.ID, req, avoid)
	if err := checkHomeReachable(snap, dec, err, homePtr); err != nil {
		p.view.release(ws.ID)
		return err
	}
	oldServer, reset := ws.ServerID, false
	p.retire(ctx, oldServer, ws.ContainerID) // never two copies: the old one goes first, if its agent answers
	moved, err := p.launch(ctx, ws.ID, snap, dec, req, avoid, spec, ws.Environment, launchSteps{
		home: homePtr,
		reserve: func(server registry.Server, node placement.Node) (registry.Workspace, error) {
			return p.DB.MoveWorkspace(ctx, ws.ID, server.ID, limits(node))
		},
		undo: func(moved registry.Workspace, why error) {
			p.setStatusLocked(ctx, moved.ID, fleet.StatusError, "re-placement failed: "+why.Error())
		},
		finish: func(w *registry.Workspace, h homeOutcome) {
			if w.Metadata == nil {
				w.Metadata = map[string]any{}
			}
			reset = h.reset
			w.Metadata["previous_server_id"] = oldServer
			w.Metadata["replaced_at"] = time.Now().UTC().Format(time.RFC3339)
		},
	})
	if err != nil {
		return err
	}
	what := "its home directory went with it"
	if reset {
		what = "its home directory is new (the old one is gone)"
	}
	p.log.Info("workspace re-placed", "workspace_id", ws.ID, "from", oldServer, "to", moved.ServerID)
	p.event(ctx, registry.Event{Kind: "workspace.replaced", ServerID: moved.ServerID, WorkspaceID: ws.ID,
		Message: fmt.Sprintf("re-placed from %s to %s; %s", oldServer, moved.ServerID, what)})
	p.notify(ctx, ws.ID)
	return nil
}

// retire removes the container a workspace left behind on its old server,
// if that server answers; otherwise reconciliation stops and removes it when
// the server is back. The old home directory is kept.
func (p *Placer) retire(ctx context.Context, serverID, containerID string) {
	if containerID == "" {
		return
	}
	s, err := p.DB.GetServer(ctx, serverID)
	if err != nil {
		return
	}
	if err := removeContainer(ctx, p.agent(s), containerID, 15*time.Second); err != nil {
		p.log.Info("old container not removed now; reconciliation will", "server", serverID, "error", err)
	}
}

func agentCreateError(err error, image, serverID string) error {
	switch {
	case errors.Is(err, agentclient.ErrImageNotFound):
		return &ImageMissingError{Image: image, ServerID: serverID}
	case errors.Is(err, agentclient.ErrStartFailed):
		return fmt.Errorf("%w: %w", ErrStartFailed, err)
	}
	return fmt.Errorf("%w: %w", ErrCreateFailed, err)
}

// image picks the workspace image (contract §9.4, with §15's decision that
// base_image wins over server images).
func (p *Placer) image(baseImage string, spec tiers.Spec, s registry.Server) string {
	switch {
	case baseImage != "":
		return baseImage
	case spec.NeedsGPU() && s.WorkspaceImageGPU != "":
		return s.WorkspaceImageGPU
	case wire.NormalizeArch(s.Architecture) == "arm64" && s.WorkspaceImageARM64 != "":
		return s.WorkspaceImageARM64
	case wire.NormalizeArch(s.Architecture) == "amd64" && s.WorkspaceImageAMD64 != "":
		return s.WorkspaceImageAMD64
	case s.WorkspaceImage != "":
		return s.WorkspaceImage
	}
	return p.cfg.WorkspaceImage
}

// containerSpec is contract §9.3: name, environment, home mount, limits.
func (p *Placer) containerSpec(ws registry.Workspace, env map[string]string, creds registry.Credentials, spec tiers.Spec,
	node placement.Node, freshHome bool) wire.CreateContainerRequest {
	all := map[string]string{}
	for k, v := range env {
		// Create refused these; a record made before the check existed
		// still never overrides them.
		if !slices.Contains(ReservedEnv, k) && (spec.NeedsGPU() || !slices.Contains(GPUEnv, k)) {
			all[k] = v
		}
	}
	all["WORKSPACE_ID"], all["USER_ID"], all["SESSION_ID"], all["WORKSPACE_TIER"] = ws.ID, ws.UserID, ws.SessionID, ws.Tier
	if p.cfg.GitEnv {
		setGitEnv(all, ws, creds)
	}
	if spec.NeedsGPU() {
		if _, ok := all["NVIDIA_VISIBLE_DEVICES"]; !ok {
			all["NVIDIA_VISIBLE_DEVICES"] = "all"
		}
		if _, ok := all["NVIDIA_DRIVER_CAPABILITIES"]; !ok {
			all["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
		}
	}
	return wire.CreateContainerRequest{
		Name:  ContainerName(ws.ID),
		Image: ws.Image,
		Env:   all,
		Labels: map[string]string{
			wire.LabelUserID: ws.UserID, wire.LabelSessionID: ws.SessionID, wire.LabelTier: ws.Tier,
			wire.LabelCluster: p.cfg.ClusterID,
		},
		Mounts:    []wire.Mount{{Source: HomeDir(ws.ID), Target: "/home/dev", Fresh: freshHome, QuotaGB: spec.StorageGB}},
		Resources: wire.Resources{CPU: p.cpuLimit(spec.VCPU, node), MemoryMB: spec.MemoryMB},
		Limits:    spec.ProcessLimits(),
		// Weakenings of the agent's sandbox the operator allowed
		// (BERTH_SANDBOX_EXCEPTIONS); the agent logs and reports them.
		SandboxExceptions: p.cfg.SandboxExceptions,
		GPU:               gpuRequest(spec),
		Hostname:          "workspace",
		Runtime:           p.cfg.Runtime,
		Start:             true,
		WorkspaceID:       ws.ID,
		Epoch:             ws.Epoch,
	}
}

// EventSandbox is recorded when a workspace's sandbox is weaker than
// berth's default: the host could not apply part of it (runc instead of
// runsc, no disk quota) or an operator exception was applied.
const EventSandbox = "workspace.sandbox"

// sandboxEvent records what the agent reported of a create's sandbox when
// it is not the full default.
func (p *Placer) sandboxEvent(ctx context.Context, serverID, workspaceID string, rep *wire.SandboxReport) {
	if rep == nil || len(rep.Degraded) == 0 && len(rep.Exceptions) == 0 {
		return
	}
	msg := "sandbox weaker than the default"
	if len(rep.Degraded) > 0 {
		msg += ": " + strings.Join(rep.Degraded, "; ")
	}
	p.event(ctx, registry.Event{Kind: EventSandbox, ServerID: serverID, WorkspaceID: workspaceID, Message: msg,
		Data: map[string]any{"runtime": rep.Runtime, "network": rep.Network, "egress": rep.Egress,
			"disk_quota": rep.DiskQuota, "exceptions": rep.Exceptions, "degraded": rep.Degraded}})
}

// gpuRequest is the device request of a GPU tier: its GPU count (at least
// one, as placement counts it) with the capabilities berth's environment
// announces (NVIDIA_DRIVER_CAPABILITIES compute,utility); nil for others.
func gpuRequest(spec tiers.Spec) *wire.GPURequest {
	if !spec.NeedsGPU() {
		return nil
	}
	return &wire.GPURequest{Count: max(spec.GPUCount, 1), Capabilities: []string{"gpu", "compute", "utility"}}
}

// cpuLimit is the CPU limit to give a container: the tier's vCPUs, but no
// more than the server's real cores when they are known. Placement counts
// overcommitted vCPUs (CPUOvercommit), while Docker refuses a limit above
// the host's core count; a limit of every core is no limit anyway.
func (c *core) cpuLimit(vcpu float64, n placement.Node) float64 {
	cores := n.Real.CPU / max(c.cfg.CPUOvercommit, 1)
	if cores > 0 && vcpu > cores {
		return cores
	}
	return vcpu
}

// limits are the ceilings the registry checks a reservation against: the
// node's effective totals (the smaller of admin-configured and measured).
func limits(n placement.Node) registry.Limits {
	eff := n.Effective()
	return registry.Limits{
		CPU: eff.Total.CPU, MemoryMB: eff.Total.MemoryMB, DiskGB: eff.Total.DiskGB,
		BandwidthMbps: eff.Total.BandwidthMbps, MaxWorkspaces: n.MaxWorkspaces, GPUCount: n.GPUCount,
	}
}
