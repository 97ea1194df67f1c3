package orchestrator

import (
	"context"
	"net"
	"strconv"

	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
)

// Members is the gossip view: live capacity and liveness of agents.
type Members interface {
	Members() []gossip.Member
}

// HealthView tells a server's current health state; ok is false when the
// tracker has no opinion yet.
type HealthView interface {
	Health(serverID string) (placement.Health, bool)
}

// Snapshot is the fleet at one instant, as placement sees it.
type Snapshot struct {
	Servers []registry.Server // registration order
	Nodes   []placement.Node  // same order
	byID    map[string]int
}

// Server returns a server of the snapshot by id.
func (s Snapshot) Server(id string) (registry.Server, bool) {
	i, ok := s.byID[id]
	if !ok {
		return registry.Server{}, false
	}
	return s.Servers[i], true
}

// Node returns a node of the snapshot by id.
func (s Snapshot) Node(id string) (placement.Node, bool) {
	i, ok := s.byID[id]
	if !ok {
		return placement.Node{}, false
	}
	return s.Nodes[i], true
}

// Snapshot builds the fleet view: registry rows, what their workspaces
// reserve, the capacity each agent gossips, and health.
func (o *Orchestrator) Snapshot(ctx context.Context) (Snapshot, error) {
	servers, err := o.db.ListServers(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	usage, err := o.db.ServerUsage(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	live := map[string]gossip.Member{}
	if o.members != nil {
		for _, m := range o.members.Members() {
			live[m.Name] = m
		}
	}
	snap := Snapshot{Servers: servers, Nodes: make([]placement.Node, len(servers)), byID: make(map[string]int, len(servers))}
	for i, s := range servers {
		snap.byID[s.ID] = i
		u := usage[s.ID]
		n := placement.Node{
			ID: s.ID, Name: s.Name, Hostname: s.Hostname, Region: s.Region, Architecture: s.Architecture,
			Labels: s.Labels, State: placement.State(s.State), Health: placement.Health(s.Health),
			GPUType: s.GPUType, GPUCount: s.GPUCount, MaxWorkspaces: s.MaxWorkspaces, Workspaces: u.Workspaces,
			Configured: placement.Resources{CPU: s.TotalCPU, MemoryMB: s.TotalMemoryMB, DiskGB: s.TotalDiskGB, BandwidthMbps: s.TotalBandwidthMbps},
			Reserved:   placement.Resources{CPU: u.Reserved.CPU, MemoryMB: u.Reserved.MemoryMB, DiskGB: u.Reserved.DiskGB, BandwidthMbps: u.Reserved.BandwidthMbps},
		}
		if m, ok := live[s.ID]; ok && m.MetaErr == "" && m.State != gossip.StateDead && m.State != gossip.StateLeft {
			meta := m.Meta
			n.Real = placement.Measured{
				CPU: float64(meta.CPUMilli) / 1000 * max(o.opts.CPUOvercommit, 1), MemoryMB: meta.MemTotalMB, MemoryFreeMB: meta.MemFreeMB,
				DiskGB: meta.DiskTotalGB, DiskFreeGB: meta.DiskFreeGB,
			}
			if n.Architecture == "" {
				n.Architecture = meta.Architecture
			}
			if n.GPUType == "" && meta.GPUCount > 0 {
				n.GPUType, n.GPUCount = meta.GPUType, meta.GPUCount
			}
		}
		if o.health != nil {
			if h, ok := o.health.Health(s.ID); ok {
				n.Health = h
			}
		}
		snap.Nodes[i] = n
	}
	return snap, nil
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

// AgentAddr is where a server's agent listens: the registry's address.
func AgentAddr(s registry.Server) string {
	host := s.IPAddress
	if host == "" {
		host = s.Hostname
	}
	return net.JoinHostPort(host, strconv.Itoa(s.AgentPort))
}
