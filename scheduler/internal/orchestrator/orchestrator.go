package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// Agents returns the client of a server's agent.
type Agents interface {
	Client(serverID, addr string) *agentclient.Client
}

// Observer hears of placement decisions (metrics).
type Observer interface {
	Placement(result, strategy string, took time.Duration)
}

// Options are the orchestrator's settings.
type Options struct {
	Strategy       placement.Strategy
	ClusterID      string        // put on every container (wire.LabelCluster)
	CPUOvercommit  float64       // vCPUs placeable per real core; 0 means 1
	WorkspaceImage string        // fallback image (COMPUTE_WORKSPACE_IMAGE)
	Runtime        string        // container runtime; "" = daemon default
	CreateTimeout  time.Duration // per agent create call
	Observer       Observer      // nil: no metrics
}

// Orchestrator drives workspaces. Safe for concurrent use.
type Orchestrator struct {
	db      *registry.DB
	agents  Agents
	members Members
	health  HealthView
	tiers   tiers.Catalog
	opts    Options
	log     hclog.Logger
	rrSeq   atomic.Uint64

	rec      ReconcileOptions
	down     DownView // nil: servers are never declared lost
	notifier Notifier // nil: nobody is told of status changes
	orphans  sync.Map // "server/container" → time.Time first seen

	busyMu sync.Mutex
	busy   map[string]int // workspace id → operations in progress (create, move, delete)

	locksMu sync.Mutex
	locks   map[string]*wsLock // workspace id → lock of read-modify-write operations (scale)
}

type wsLock struct {
	sync.Mutex
	users int
}

// lockWorkspace serialises operations that read a workspace, talk to its
// agent and write it back (scale), so two of them never interleave. The
// lock lives only while someone holds or waits for it.
func (o *Orchestrator) lockWorkspace(id string) func() {
	o.locksMu.Lock()
	l, ok := o.locks[id]
	if !ok {
		l = &wsLock{}
		o.locks[id] = l
	}
	l.users++
	o.locksMu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		o.locksMu.Lock()
		if l.users--; l.users == 0 {
			delete(o.locks, id)
		}
		o.locksMu.Unlock()
	}
}

// markBusy records that berth itself is changing a workspace (creating,
// moving or deleting it), so events and reconciliation leave it alone; the
// returned func ends the mark. Marks nest: concurrent operations on one id
// each hold their own.
func (o *Orchestrator) markBusy(id string) func() {
	o.busyMu.Lock()
	o.busy[id]++
	o.busyMu.Unlock()
	return func() {
		o.busyMu.Lock()
		if o.busy[id]--; o.busy[id] <= 0 {
			delete(o.busy, id)
		}
		o.busyMu.Unlock()
	}
}

func (o *Orchestrator) isBusy(id string) bool {
	o.busyMu.Lock()
	defer o.busyMu.Unlock()
	return o.busy[id] > 0
}

// New builds an orchestrator. members and health may be nil.
func New(db *registry.DB, agents Agents, members Members, health HealthView, catalog tiers.Catalog, opts Options, log hclog.Logger) *Orchestrator {
	if opts.CreateTimeout == 0 {
		opts.CreateTimeout = 2 * time.Minute
	}
	return &Orchestrator{db: db, agents: agents, members: members, health: health, tiers: catalog, opts: opts, log: log,
		busy: map[string]int{}, locks: map[string]*wsLock{},
		rec: ReconcileOptions{Interval: 10 * time.Second, OrphanGrace: 10 * time.Minute, LostGrace: time.Minute}}
}

// SetReconcile configures reconciliation and failover: how often, the
// orphan and lost-server grace periods, where server downtime is read, and
// who hears of status changes (either may be nil). Call before Run*.
func (o *Orchestrator) SetReconcile(opts ReconcileOptions, down DownView, n Notifier) {
	o.rec, o.down, o.notifier = opts, down, n
}

// Request turns a tier and config into a placement request.
func (o *Orchestrator) Request(cfg WorkspaceConfig) (placement.Request, tiers.Spec) {
	spec := o.tiers.Resolve(cfg.Tier)
	req := placement.Request{
		Resources: placement.Resources{CPU: spec.VCPU, MemoryMB: spec.MemoryMB, DiskGB: spec.StorageGB, BandwidthMbps: spec.BandwidthMbps},
		GPU:       needsGPU(spec),
		GPUType:   spec.GPUType, GPUCount: spec.GPUCount,
		Architecture: spec.Architecture,
		Region:       cfg.RegionPreference,
		Strategy:     o.opts.Strategy,
	}
	if req.BandwidthMbps == 0 {
		req.BandwidthMbps = 100
	}
	return req, spec
}

// Create places and starts a workspace; see the package doc for the flow.
// It is idempotent per workspace id: the same owner gets the existing
// workspace back, another owner ErrOwnedByOther. The work runs to its end
// even if ctx is cancelled (a client that hangs up must not leave a
// half-made workspace); ctx's values are kept.
func (o *Orchestrator) Create(ctx context.Context, r CreateRequest) (registry.Workspace, error) {
	ctx = context.WithoutCancel(ctx)
	if r.WorkspaceID == "" {
		r.WorkspaceID = uuid.NewString()
	} else if ws, err := o.db.GetWorkspace(ctx, r.WorkspaceID); err == nil {
		return o.existing(ws, r.UserID)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return registry.Workspace{}, err
	}

	req, spec := o.Request(r.Config)
	req.Sequence = o.rrSeq.Add(1) - 1
	start := time.Now()
	snap, err := o.Snapshot(ctx)
	if err != nil {
		return registry.Workspace{}, err
	}
	if len(snap.Nodes) == 0 {
		o.observe("no_servers", req, start)
		return registry.Workspace{}, ErrNoServers
	}
	dec, err := placement.Place(snap.Nodes, req)
	o.observe(placementResult(err), req, start)
	if err != nil {
		o.event(ctx, registry.Event{Kind: "placement.failed", WorkspaceID: r.WorkspaceID, Message: err.Error(),
			Data: map[string]any{"summary": dec.Summary(), "tier": spec.Tier}})
		return registry.Workspace{}, fmt.Errorf("%w: %w", ErrPlacement, err)
	}

	var lastErr error
	for _, cand := range dec.Candidates {
		server, _ := snap.Server(cand.NodeID)
		node, _ := snap.Node(cand.NodeID)
		ws, err := o.createOn(ctx, r, spec, server, node)
		switch {
		case err == nil:
			o.log.Info("workspace created", "workspace_id", ws.ID, "server", server.ID, "score", cand.Score, "epoch", ws.Epoch)
			return ws, nil
		case errors.Is(err, registry.ErrExists):
			existing, gerr := o.db.GetWorkspace(ctx, r.WorkspaceID)
			if gerr != nil {
				return registry.Workspace{}, gerr
			}
			return o.existing(existing, r.UserID)
		case errors.Is(err, registry.ErrInsufficientCapacity), errors.Is(err, registry.ErrServerNotActive), errors.Is(err, registry.ErrNotFound):
			// Another create took the room, or an operator drained or removed
			// the server, between snapshot and reservation.
		default:
			o.log.Warn("create failed on server, trying next", "workspace_id", r.WorkspaceID, "server", server.ID, "error", err)
		}
		o.event(ctx, registry.Event{Kind: "placement.retry", ServerID: server.ID, WorkspaceID: r.WorkspaceID, Message: err.Error()})
		lastErr = err
	}
	if errors.Is(lastErr, registry.ErrInsufficientCapacity) || errors.Is(lastErr, registry.ErrServerNotActive) || errors.Is(lastErr, registry.ErrNotFound) {
		return registry.Workspace{}, fmt.Errorf("%w: %w", ErrPlacement, placement.ErrNoCapacity)
	}
	return registry.Workspace{}, lastErr
}

func (o *Orchestrator) observe(result string, req placement.Request, start time.Time) {
	if o.opts.Observer != nil {
		o.opts.Observer.Placement(result, string(placement.ParseStrategy(string(req.Strategy))), time.Since(start))
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

func (o *Orchestrator) existing(ws registry.Workspace, userID string) (registry.Workspace, error) {
	if ws.UserID != userID {
		return registry.Workspace{}, ErrOwnedByOther
	}
	return ws, nil
}

// createOn reserves on one server and asks its agent for the container.
// On any failure after the reservation, the row is deleted (releasing the
// reservation) and any container that was made is removed.
func (o *Orchestrator) createOn(ctx context.Context, r CreateRequest, spec tiers.Spec, server registry.Server, node placement.Node) (registry.Workspace, error) {
	defer o.markBusy(r.WorkspaceID)()
	image := o.image(r.Config, spec, server)
	now := time.Now().UTC()
	host := server.Hostname
	if host == "" {
		host = server.ID
	}
	ws := registry.Workspace{
		ID: r.WorkspaceID, UserID: r.UserID, SessionID: r.SessionID, Status: registry.StatusCreating,
		Tier: r.Config.Tier, Host: host, Port: registry.DefaultPort, ServerID: server.ID,
		CreatedAt: now, LastActivity: now, Metadata: map[string]any{}, Image: image,
		Repositories: r.Config.Repos, Environment: r.Config.Environment, Config: r.Config.Raw,
		Reservation: reservation(spec),
	}
	if err := o.db.ReserveAndInsert(ctx, ws, limits(node)); err != nil {
		return registry.Workspace{}, err
	}
	ws, err := o.db.GetWorkspace(ctx, ws.ID) // the epoch was assigned in the transaction
	if err != nil {
		return registry.Workspace{}, err
	}
	client := o.agents.Client(server.ID, AgentAddr(server))
	actx, cancel := context.WithTimeout(ctx, o.opts.CreateTimeout)
	defer cancel()
	ctr, err := client.Create(actx, o.containerSpec(ws, r, spec, node))
	if err != nil {
		// The agent finishes a create its caller gave up on: when the answer
		// was lost rather than refused, remove what it may have made by name.
		orphan := ""
		if errors.Is(err, agentclient.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
			orphan = ContainerName(ws.ID)
		}
		o.release(ctx, ws, client, orphan)
		return registry.Workspace{}, agentCreateError(err, image, server.ID)
	}
	ws, err = o.db.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
		w.ContainerID = ctr.ID
		if w.Status != registry.StatusPendingDeletion { // marked while it was being made: stays marked
			w.Status, w.StatusReason = registry.StatusRunning, ""
		}
		acknowledge(w)
		return nil
	})
	if err != nil {
		o.release(ctx, registry.Workspace{ID: r.WorkspaceID, ServerID: server.ID}, client, ctr.ID)
		return registry.Workspace{}, err
	}
	return ws, nil
}

// acknowledged marks a workspace whose create was answered: from then on it
// is never dropped as an interrupted create, even while a move makes it
// "creating" again.
const acknowledgedKey = "acknowledged_at"

func acknowledge(w *registry.Workspace) {
	if w.Metadata == nil {
		w.Metadata = map[string]any{}
	}
	if _, ok := w.Metadata[acknowledgedKey]; !ok {
		w.Metadata[acknowledgedKey] = time.Now().UTC().Format(time.RFC3339)
	}
}

func acknowledged(w registry.Workspace) bool { _, ok := w.Metadata[acknowledgedKey]; return ok }

// release undoes a failed create: the container (if any) goes, then the row.
func (o *Orchestrator) release(ctx context.Context, ws registry.Workspace, client *agentclient.Client, containerID string) {
	if containerID != "" {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := client.Remove(rctx, containerID, true); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
			o.log.Error("could not remove container of failed create; reconciliation will", "container", containerID, "error", err)
		}
		cancel()
	}
	if err := o.db.DeleteWorkspace(ctx, ws.ID); err != nil && !errors.Is(err, registry.ErrNotFound) {
		o.log.Error("could not release reservation of failed create", "workspace_id", ws.ID, "error", err)
	}
}

func agentCreateError(err error, image, serverID string) error {
	switch {
	case errors.Is(err, agentclient.ErrImageNotFound):
		return fmt.Errorf("%w: Workspace image '%s' not found on server '%s'. Run 'make load-workspace-images-dind' to load workspace images into the development servers.", ErrImageNotFound, image, serverID)
	case errors.Is(err, agentclient.ErrStartFailed):
		return fmt.Errorf("%w (%v)", ErrStartFailed, err)
	}
	return fmt.Errorf("%w (%v)", ErrCreateFailed, err)
}

// image picks the workspace image (contract §9.4, with §15's decision that
// base_image wins over server images).
func (o *Orchestrator) image(cfg WorkspaceConfig, spec tiers.Spec, s registry.Server) string {
	switch {
	case cfg.BaseImage != "":
		return cfg.BaseImage
	case spec.IsGPU && s.WorkspaceImageGPU != "":
		return s.WorkspaceImageGPU
	case wire.NormalizeArch(s.Architecture) == "arm64" && s.WorkspaceImageARM64 != "":
		return s.WorkspaceImageARM64
	case wire.NormalizeArch(s.Architecture) == "amd64" && s.WorkspaceImageAMD64 != "":
		return s.WorkspaceImageAMD64
	case s.WorkspaceImage != "":
		return s.WorkspaceImage
	}
	return o.opts.WorkspaceImage
}

// containerSpec is contract §9.3: name, environment, home mount, limits.
func (o *Orchestrator) containerSpec(ws registry.Workspace, r CreateRequest, spec tiers.Spec, node placement.Node) wire.CreateContainerRequest {
	env := map[string]string{
		"WORKSPACE_ID": ws.ID, "USER_ID": ws.UserID, "SESSION_ID": ws.SessionID, "WORKSPACE_TIER": ws.Tier,
	}
	for k, v := range r.Config.Environment {
		env[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			env[k] = v
		}
	}
	set("GIT_REPOS", strings.Join(r.Config.Repos, ","))
	set("GIT_CREDENTIALS", r.Config.GitCredentials)
	set("GIT_BRANCH", r.Config.GitBranch)
	set("GIT_USER_NAME", r.Config.GitName)
	set("GIT_USER_EMAIL", r.Config.GitEmail)
	if spec.IsGPU {
		if _, ok := env["NVIDIA_VISIBLE_DEVICES"]; !ok {
			env["NVIDIA_VISIBLE_DEVICES"] = "all"
		}
		if _, ok := env["NVIDIA_DRIVER_CAPABILITIES"]; !ok {
			env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
		}
	}
	return wire.CreateContainerRequest{
		Name:  ContainerName(ws.ID),
		Image: ws.Image,
		Env:   env,
		Labels: map[string]string{
			wire.LabelUserID: ws.UserID, wire.LabelSessionID: ws.SessionID, wire.LabelTier: ws.Tier,
			wire.LabelCluster: o.opts.ClusterID,
		},
		Mounts:      []wire.Mount{{Source: HomeDir(ws.ID), Target: "/home/dev"}},
		Resources:   wire.Resources{CPU: o.cpuLimit(spec.VCPU, node), MemoryMB: spec.MemoryMB},
		Hostname:    "workspace",
		Runtime:     o.opts.Runtime,
		Start:       true,
		WorkspaceID: ws.ID,
		Epoch:       ws.Epoch,
	}
}

// ContainerName is the Docker name of a workspace's container. The contract
// uses the first 12 characters of the id; berth uses the whole id (ids are
// at most 64 safe characters) so two ids with a common prefix never clash.
func ContainerName(workspaceID string) string { return "workspace-" + workspaceID }

// DataDir is all of a workspace's data, relative to the agent's data dir;
// only the cleanup loop removes it.
func DataDir(workspaceID string) string { return "workspaces/" + workspaceID }

// HomeDir is a workspace's home directory, relative to the agent's data dir.
func HomeDir(workspaceID string) string { return DataDir(workspaceID) + "/home" }

func (o *Orchestrator) event(ctx context.Context, e registry.Event) {
	if _, err := o.db.AddEvent(ctx, e); err != nil {
		o.log.Warn("record event", "kind", e.Kind, "error", err)
	}
}

// Explain is a dry run of placement: how a workspace with cfg would be
// placed right now, with every server's reason or score. Nothing is
// reserved, and the round-robin counter does not move.
func (o *Orchestrator) Explain(ctx context.Context, cfg WorkspaceConfig) (placement.Decision, error) {
	req, _ := o.Request(cfg)
	req.Sequence = o.rrSeq.Load()
	snap, err := o.Snapshot(ctx)
	if err != nil {
		return placement.Decision{}, err
	}
	if len(snap.Nodes) == 0 {
		return placement.Decision{}, ErrNoServers
	}
	return placement.Place(snap.Nodes, req)
}
