package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/gossip"
)

// Config are the orchestrator's settings.
type Config struct {
	Strategy       placement.Strategy
	ClusterID      string  // put on every container (wire.LabelCluster); reconciliation touches no other
	CPUOvercommit  float64 // vCPUs placeable per real core; below 1 counts as 1
	WorkspaceImage string  // the image when neither request nor server names one (COMPUTE_WORKSPACE_IMAGE)
	Runtime        string  // container runtime; "" = the agent's sandbox runtime (runsc where it works)
	// SandboxExceptions go with every create (wire.SandboxExceptions):
	// the operator's explicit weakenings of the agent's sandbox.
	SandboxExceptions []string
	CreateTimeout     time.Duration // one agent create call
	// HomeMoveTimeout bounds one copy of a home directory between agents.
	HomeMoveTimeout time.Duration
	// GitEnv hands the repos, branch, identity and credentials to the
	// container as GIT_* variables (contract §9.3), for images that clone
	// by themselves; off, none are set (Deps.GitSetup does the work).
	GitEnv bool

	ReconcileInterval time.Duration // a full pass over every server
	// ReconcileRate bounds the servers compared with their containers a
	// second (0: no bound): past ReconcileInterval × ReconcileRate
	// servers, a pass takes longer. The agents' event logs deliver changes
	// as they happen; the pass is the safety net.
	ReconcileRate   float64
	OrphanGrace     time.Duration // a container without a record is removed after this long (stopped at once)
	LostGrace       time.Duration // a server down this long loses its workspaces (server_lost)
	CleanupInterval time.Duration // how often pending_deletion workspaces are purged
	// EventRetention: events older than this are deleted, at start and
	// every EventPruneInterval; 0 keeps them forever.
	EventRetention     time.Duration
	EventPruneInterval time.Duration

	// Idle stop (idle.go): a running workspace unused this long is stopped;
	// 0 = never (a workspace's own timeout_hours wins).
	IdleTimeout       time.Duration
	IdleCheckInterval time.Duration // how often running workspaces are checked
	IdleCPUPercent    float64       // CPU use (% of one core) that counts as use; 0 = CPU never does
}

// DefaultEventRetention is how long events are kept: 30 days.
const DefaultEventRetention = 30 * 24 * time.Hour

// Default returns the settings berth runs with unless told otherwise.
func Default() Config {
	return Config{
		Strategy: placement.Spread, ClusterID: "berth", CPUOvercommit: 1, WorkspaceImage: "berth/workspace:dev",
		CreateTimeout: 2 * time.Minute, HomeMoveTimeout: 2 * time.Hour,
		ReconcileInterval: 10 * time.Second, ReconcileRate: 50, OrphanGrace: 10 * time.Minute, LostGrace: time.Minute,
		CleanupInterval: 5 * time.Second, EventRetention: DefaultEventRetention, EventPruneInterval: time.Hour,
		IdleTimeout: 24 * time.Hour, IdleCheckInterval: 2 * time.Second, IdleCPUPercent: 5,
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.ClusterID == "" {
		errs = append(errs, errors.New("cluster id is empty"))
	}
	for name, d := range map[string]time.Duration{"create timeout": c.CreateTimeout, "home move timeout": c.HomeMoveTimeout, "reconcile interval": c.ReconcileInterval,
		"cleanup interval": c.CleanupInterval, "idle check interval": c.IdleCheckInterval, "event prune interval": c.EventPruneInterval} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.EventRetention < 0 {
		errs = append(errs, fmt.Errorf("event retention must not be negative (0 keeps events forever), got %s", c.EventRetention))
	}
	if c.ReconcileRate < 0 {
		errs = append(errs, fmt.Errorf("reconcile rate must not be negative (0: no bound), got %g", c.ReconcileRate))
	}
	if c.OrphanGrace < 0 || c.LostGrace < 0 {
		errs = append(errs, errors.New("grace periods must not be negative"))
	}
	if c.IdleTimeout < 0 || c.IdleCPUPercent < 0 {
		errs = append(errs, errors.New("idle timeout and idle CPU percent must not be negative"))
	}
	return errors.Join(errs...)
}

// Agents returns the client of a server's agent.
type Agents interface {
	// Client's connections stay open between calls (for
	// agentclient.IdleConnTimeout).
	Client(serverID, addr string) *agentclient.Client
	// Probe's dial for each call and hang up: for a server called minutes
	// apart, which should hold nothing open meanwhile.
	Probe(serverID, addr string) *agentclient.Client
}

// Members is the gossip view: live capacity and liveness of agents.
type Members interface {
	Members() []gossip.Member
}

// HealthView tells a server's current health; ok is false when the tracker
// has no opinion yet.
type HealthView interface {
	Health(serverID string) (fleet.Health, bool)
}

// DownView tells since when a server has been down.
type DownView interface {
	DownSince(serverID string) (time.Time, bool)
}

// Notifier hears of workspace status changes (the podex API's sync-status
// endpoint, when configured).
type Notifier interface {
	WorkspaceStatus(ctx context.Context, ws registry.Workspace)
}

// Observer hears of placement decisions (metrics).
type Observer interface {
	Placement(result, strategy string, took time.Duration)
}

// Deps are what the orchestrator reads and drives. DB and Agents are
// required; the others may be nil (Tiers: the built-in catalogue; Health:
// the registry's recorded health; Down: servers are never declared lost).
type Deps struct {
	DB       *registry.DB
	Agents   Agents
	Members  Members
	Health   HealthView
	Down     DownView
	Notifier Notifier
	Observer Observer
	Tiers    Catalog
	Log      hclog.Logger
	GitSetup GitSetup // nil: no git setup (gitsetup.go)
}

// Catalog is the tier catalogue: tier name → spec (tiers.Catalog).
type Catalog interface {
	Lookup(name string) (tiers.Spec, bool)
	Resolve(name string) tiers.Spec
	All() []tiers.Spec
}
