package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
)

// Orchestrator is the three parts together, as the HTTP layers and the app
// use them. Safe for concurrent use.
type Orchestrator struct {
	*Placer
	*Lifecycle
	*Reconciler
}

// New builds the orchestrator.
func New(cfg Config, d Deps) (*Orchestrator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.DB == nil || d.Agents == nil {
		return nil, errors.New("orchestrator: DB and Agents are required")
	}
	if d.Tiers == nil {
		d.Tiers = tiers.Builtin()
	}
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	c := &core{cfg: cfg, Deps: d, log: d.Log, locks: newLocks(), activity: &activity{}}
	c.view = &fleetView{c: c}
	p := &Placer{core: c, flights: newFlights()}
	return &Orchestrator{
		Placer:     p,
		Lifecycle:  &Lifecycle{core: c, placer: p},
		Reconciler: &Reconciler{core: c},
	}, nil
}

// core is what the parts share.
type core struct {
	Deps
	cfg      Config
	log      hclog.Logger
	locks    *locks
	activity *activity  // use seen by the streams (idle.go)
	view     *fleetView // the fleet as placement sees it, in memory
}

// agent is the client of a server's agent.
func (c *core) agent(s registry.Server) *agentclient.Client {
	return c.Agents.Client(s.ID, AgentAddr(s))
}

// client returns the agent client of the workspace's server, and ctx
// carrying the workspace's fencing epoch for every call made with it.
func (c *core) client(ctx context.Context, ws registry.Workspace) (*agentclient.Client, context.Context, error) {
	if ws.ServerID == "" || ws.ContainerID == "" {
		return nil, ctx, ErrNoContainer
	}
	s, err := c.DB.GetServer(ctx, ws.ServerID)
	if err != nil {
		return nil, ctx, fmt.Errorf("%w: %w", ErrServerUnavailable, err)
	}
	return c.agent(s), agentclient.WithEpoch(ctx, ws.Epoch), nil
}

func (c *core) event(ctx context.Context, e registry.Event) {
	if _, err := c.DB.AddEvent(ctx, e); err != nil {
		c.log.Warn("record event", "kind", e.Kind, "error", err)
	}
}

// setStatusLocked changes a workspace's status and tells the notifier on
// change. The caller holds the workspace's lock.
func (c *core) setStatusLocked(ctx context.Context, id string, status fleet.Status, reason string) {
	c.setStatusAtLocked(ctx, id, status, reason, time.Time{})
}

// setStatusAtLocked is setStatusLocked for a change that happened at at
// (zero: now), such as an agent's container event: the workspace's billing
// interval closes (or opens) at that moment (registry.SetWorkspaceStatusAt).
func (c *core) setStatusAtLocked(ctx context.Context, id string, status fleet.Status, reason string, at time.Time) {
	changed, err := c.DB.SetWorkspaceStatusAt(ctx, id, status, reason, at)
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) {
			c.log.Warn("set workspace status", "workspace_id", id, "status", status, "error", err)
		}
		return
	}
	if changed {
		c.log.Info("workspace status changed", "workspace_id", id, "status", status, "reason", reason)
		c.notify(ctx, id)
	}
}

// notify tells the notifier the workspace's stored status.
func (c *core) notify(ctx context.Context, id string) {
	if c.Notifier == nil {
		return
	}
	if ws, err := c.DB.GetWorkspace(ctx, id); err == nil {
		c.Notifier.WorkspaceStatus(ctx, ws)
	}
}

// removeContainer removes a container, treating "already gone" as done.
func removeContainer(ctx context.Context, client *agentclient.Client, id string, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.Remove(rctx, id, true); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
		return err
	}
	return nil
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

// AgentAddr is where a server's agent listens: the registry's address.
func AgentAddr(s registry.Server) string {
	host := s.IPAddress
	if host == "" {
		host = s.Hostname
	}
	return net.JoinHostPort(host, strconv.Itoa(s.AgentPort))
}

// Snapshot is the fleet view the parts share (placement's input).
func (o *Orchestrator) Snapshot(ctx context.Context) (Snapshot, error) { return o.Placer.Snapshot(ctx) }
