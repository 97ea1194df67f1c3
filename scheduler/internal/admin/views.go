package admin

import (
	"time"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// This file holds the JSON shapes of the admin API. They are exported so
// that the scheduler CLI decodes exactly what the API encodes. Keys are
// snake_case; times are RFC 3339 in UTC, null when unknown.

// Resources is an amount of the four resources a workspace reserves.
type Resources struct {
	CPU           float64 `json:"cpu"`
	MemoryMB      int64   `json:"memory_mb"`
	DiskGB        int64   `json:"disk_gb"`
	BandwidthMbps int64   `json:"bandwidth_mbps"`
}

// Use is a host's real use, as its agent gossips it.
type Use struct {
	CPUCores      float64 `json:"cpu_cores"`
	CPUPercent    int64   `json:"cpu_percent"`
	MemoryUsedMB  int64   `json:"memory_used_mb"`
	MemoryTotalMB int64   `json:"memory_total_mb"`
	DiskUsedGB    int64   `json:"disk_used_gb"`
	DiskTotalGB   int64   `json:"disk_total_gb"`
	Containers    int     `json:"containers"` // berth containers the agent counts
}

// Server is one registered server: configuration, admin state, health, and
// capacity as placement sees it.
type Server struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Hostname     string            `json:"hostname"`
	IPAddress    string            `json:"ip_address"`
	AgentPort    int               `json:"agent_port"`
	AgentAddress string            `json:"agent_address"` // host:port the scheduler dials
	Architecture string            `json:"architecture"`
	Region       string            `json:"region"`
	Labels       map[string]string `json:"labels"`
	GPUType      string            `json:"gpu_type"`
	GPUCount     int               `json:"gpu_count"`

	State           string  `json:"state"`  // active, draining, cordoned
	Health          string  `json:"health"` // healthy, degraded, unhealthy, unreachable, unknown
	LastError       string  `json:"last_error"`
	LastHealthCheck *string `json:"last_health_check"`
	GossipState     string  `json:"gossip_state"` // alive, suspect, dead, left; "" when not in gossip

	MaxWorkspaces int `json:"max_workspaces"` // 0 = unlimited
	Workspaces    int `json:"workspaces"`     // workspace rows on the server

	// Configured are the admin overrides (0 = use what the agent measures);
	// Effective the totals placement checks against; Reserved what the
	// server's workspaces hold; Available = Effective - Reserved, capped by
	// the real free memory and disk.
	Configured Resources `json:"configured"`
	Effective  Resources `json:"effective"`
	Reserved   Resources `json:"reserved"`
	Available  Resources `json:"available"`
	Use        *Use      `json:"use"` // null without live gossip data

	CreatedAt *string `json:"created_at"`
	UpdatedAt *string `json:"updated_at"`
}

// Discovered is an agent that gossips but is not registered.
type Discovered struct {
	ID           string            `json:"id"`
	AgentAddress string            `json:"agent_address"`
	GossipState  string            `json:"gossip_state"`
	Region       string            `json:"region"`
	Architecture string            `json:"architecture"`
	Labels       map[string]string `json:"labels"`
	Use          Use               `json:"use"`
	Version      string            `json:"version"`
	Since        *string           `json:"since"`
}

// ServerList is GET /admin/servers.
type ServerList struct {
	Servers    []Server     `json:"servers"`
	Discovered []Discovered `json:"discovered"`
}

// Workspace is a workspace row without its secrets.
type Workspace struct {
	ID           string    `json:"id"`
	UserID       string    `json:"user_id"`
	SessionID    string    `json:"session_id"`
	ServerID     string    `json:"server_id"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason"`
	Tier         string    `json:"tier"`
	Image        string    `json:"image"`
	ContainerID  string    `json:"container_id"`
	Reserved     Resources `json:"reserved"`
	Epoch        int64     `json:"epoch"`
	CreatedAt    *string   `json:"created_at"`
	LastActivity *string   `json:"last_activity"`
	UpdatedAt    *string   `json:"updated_at"`
	IdleStopAt   *string   `json:"idle_stop_at"` // when it is stopped if nobody uses it; null: never
}

// WorkspacePage is GET /admin/servers/{id}/workspaces: one page of the
// server's workspaces.
type WorkspacePage struct {
	ServerID   string      `json:"server_id"`
	Workspaces []Workspace `json:"workspaces"`  // oldest first, or newest first with ?order=newest
	TotalCount int         `json:"total_count"` // all the server's workspaces, not only this page's
	Next       *string     `json:"next"`        // ?after= of the next page; null on the last page
}

// Event is one entry of the registry's event log.
type Event struct {
	ID          int64          `json:"id"`
	At          *string        `json:"at"`
	Kind        string         `json:"kind"`
	ServerID    string         `json:"server_id"`
	WorkspaceID string         `json:"workspace_id"`
	Message     string         `json:"message"`
	Data        map[string]any `json:"data"`
}

// Member is a gossip member, with its metadata spelled out.
type Member struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	Address      string  `json:"address"` // gossip host:port
	Role         string  `json:"role"`    // agent, scheduler
	AgentAddress string  `json:"agent_address"`
	Region       string  `json:"region"`
	Architecture string  `json:"architecture"`
	Use          Use     `json:"use"`
	Version      string  `json:"version"`
	MetaError    string  `json:"meta_error"`
	Since        *string `json:"since"`
}

// Counts is a total and its split by some value (health, state, status).
type Counts struct {
	Total int            `json:"total"`
	By    map[string]int `json:"by"`
}

// Cluster is GET /admin/cluster: fleet totals.
type Cluster struct {
	Servers    ClusterServers   `json:"servers"`
	Workspaces Counts           `json:"workspaces"` // by status
	Capacity   ClusterCapacity  `json:"capacity"`
	Members    Counts           `json:"members"` // by gossip state
	Use        Use              `json:"use"`     // summed real use of the registered servers
	Placement  ClusterPlacement `json:"placement"`
	Generated  *string          `json:"generated_at"`
	// Raft is the leader's view of the schedulers' raft cluster (term,
	// indexes, members); absent for a scheduler without raft.
	Raft any `json:"raft,omitempty"`
}

// ClusterServers counts the servers by health and by admin state.
type ClusterServers struct {
	Total    int            `json:"total"`
	ByHealth map[string]int `json:"by_health"`
	ByState  map[string]int `json:"by_state"`
}

// ClusterCapacity sums the servers' capacity.
type ClusterCapacity struct {
	Effective Resources `json:"effective"`
	Reserved  Resources `json:"reserved"`
	Available Resources `json:"available"`
}

// ClusterPlacement says how many servers take new workspaces now.
type ClusterPlacement struct {
	Schedulable int `json:"schedulable"` // active and healthy or degraded
}

// Overview is one message of the panel's event stream: everything the page
// shows.
type Overview struct {
	Generated  *string                `json:"generated_at"`
	Cluster    Cluster                `json:"cluster"`
	Servers    []Server               `json:"servers"`
	Discovered []Discovered           `json:"discovered"`
	Members    []Member               `json:"members"`
	Workspaces map[string][]Workspace `json:"workspaces"` // by server id, newest first, at most maxPanelWorkspaces each
	Events     []Event                `json:"events"`     // newest first
	Moves      []Move                 `json:"moves"`      // home moves under way
	Billing    *BillingSummary        `json:"billing"`    // null when billing is off (billing.go)

	// WorkspacesNext is, by server id, the ?after= of the page that follows
	// the workspaces shown (GET /admin/servers/{id}/workspaces?order=newest);
	// a server whose workspaces are all shown has none.
	WorkspacesNext map[string]string `json:"workspaces_next"`
}

// Move is a home directory being copied between servers, with the last
// progress its events told.
type Move struct {
	WorkspaceID string `json:"workspace_id"`
	From        string `json:"from"`
	To          string `json:"to"`
	Progress    string `json:"progress"` // e.g. "copied 512.0 MiB of 1024.0 MiB"
	Since       string `json:"since"`
}

// timestamp is t in RFC 3339 UTC, or nil when t is zero.
func timestamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func resourcesOf(r fleet.Resources) Resources {
	return Resources{CPU: r.CPU, MemoryMB: r.MemoryMB, DiskGB: r.DiskGB, BandwidthMbps: r.BandwidthMbps}
}

func (r Resources) plus(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, MemoryMB: r.MemoryMB + o.MemoryMB, DiskGB: r.DiskGB + o.DiskGB,
		BandwidthMbps: r.BandwidthMbps + o.BandwidthMbps}
}

// useOf reads the real use an agent gossips.
func useOf(m wire.NodeMeta) Use {
	return Use{
		CPUCores: float64(m.CPUMilli) / 1000, CPUPercent: m.CPUUsedPct,
		MemoryUsedMB: max(0, m.MemTotalMB-m.MemFreeMB), MemoryTotalMB: m.MemTotalMB,
		DiskUsedGB: max(0, m.DiskTotalGB-m.DiskFreeGB), DiskTotalGB: m.DiskTotalGB,
		Containers: m.Workspaces,
	}
}

func (u Use) plus(o Use) Use {
	return Use{CPUCores: u.CPUCores + o.CPUCores, MemoryUsedMB: u.MemoryUsedMB + o.MemoryUsedMB,
		MemoryTotalMB: u.MemoryTotalMB + o.MemoryTotalMB, DiskUsedGB: u.DiskUsedGB + o.DiskUsedGB,
		DiskTotalGB: u.DiskTotalGB + o.DiskTotalGB, Containers: u.Containers + o.Containers}
}

// live reports whether a gossip member's data can be trusted as current.
func live(m gossip.Member) bool {
	return m.MetaErr == "" && m.State != gossip.StateDead && m.State != gossip.StateLeft
}

func serverOf(s registry.Server, n placement.Node, m *gossip.Member) Server {
	eff := n.Effective()
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := Server{
		ID: s.ID, Name: s.Name, Hostname: s.Hostname, IPAddress: s.IPAddress, AgentPort: s.AgentPort,
		AgentAddress: orchestrator.AgentAddr(s), Architecture: n.Architecture, Region: s.Region, Labels: labels,
		GPUType: n.GPUType, GPUCount: n.GPUCount,
		State: string(s.State), Health: string(n.Health), LastError: s.LastError,
		LastHealthCheck: timestamp(s.LastHealthCheck),
		MaxWorkspaces:   s.MaxWorkspaces, Workspaces: n.Workspaces,
		Configured: Resources{CPU: s.TotalCPU, MemoryMB: s.TotalMemoryMB, DiskGB: s.TotalDiskGB, BandwidthMbps: s.TotalBandwidthMbps},
		Effective:  resourcesOf(eff.Total),
		Reserved:   resourcesOf(n.Reserved),
		Available:  resourcesOf(eff.Available),
		CreatedAt:  timestamp(s.CreatedAt),
		UpdatedAt:  timestamp(s.UpdatedAt),
	}
	if n.Health == "" {
		out.Health = string(fleet.HealthUnknown)
	}
	if m != nil {
		out.GossipState = m.State
		if live(*m) {
			u := useOf(m.Meta)
			out.Use = &u
		}
	}
	return out
}

func discoveredOf(m gossip.Member) Discovered {
	labels := m.Meta.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return Discovered{ID: m.Name, AgentAddress: m.Meta.AgentAddr, GossipState: m.State, Region: m.Meta.Region,
		Architecture: m.Meta.Architecture, Labels: labels, Use: useOf(m.Meta), Version: m.Meta.Version,
		Since: timestamp(m.Since)}
}

func memberOf(m gossip.Member) Member {
	role := m.Meta.Role
	switch role {
	case wire.NodeRoleAgent:
		role = "agent"
	case wire.NodeRoleScheduler:
		role = "scheduler"
	}
	return Member{Name: m.Name, State: m.State, Address: m.Addr, Role: role, AgentAddress: m.Meta.AgentAddr,
		Region: m.Meta.Region, Architecture: m.Meta.Architecture, Use: useOf(m.Meta), Version: m.Meta.Version,
		MetaError: m.MetaErr, Since: timestamp(m.Since)}
}

func workspaceOf(w registry.Workspace) Workspace {
	r := w.Reservation
	return Workspace{ID: w.ID, UserID: w.UserID, SessionID: w.SessionID, ServerID: w.ServerID, Status: string(w.Status),
		StatusReason: w.StatusReason, Tier: w.Tier, Image: w.Image, ContainerID: w.ContainerID,
		Reserved: Resources{CPU: r.CPU, MemoryMB: r.MemoryMB, DiskGB: r.DiskGB, BandwidthMbps: r.BandwidthMbps},
		Epoch:    w.Epoch, CreatedAt: timestamp(w.CreatedAt), LastActivity: timestamp(w.LastActivity),
		UpdatedAt: timestamp(w.UpdatedAt)}
}

func eventOf(e registry.Event) Event {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	return Event{ID: e.ID, At: timestamp(e.At), Kind: e.Kind, ServerID: e.ServerID, WorkspaceID: e.WorkspaceID,
		Message: e.Message, Data: data}
}
