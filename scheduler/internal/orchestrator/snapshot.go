package orchestrator

import (
	"context"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
)

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
func (c *core) Snapshot(ctx context.Context) (Snapshot, error) {
	servers, err := c.DB.ListServers(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	usage, err := c.DB.ServerUsage(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	live := map[string]gossip.Member{}
	if c.Members != nil {
		for _, m := range c.Members.Members() {
			live[m.Name] = m
		}
	}
	snap := Snapshot{Servers: servers, Nodes: make([]placement.Node, len(servers)), byID: make(map[string]int, len(servers))}
	for i, s := range servers {
		snap.byID[s.ID] = i
		u := usage[s.ID]
		n := placement.Node{
			ID: s.ID, Name: s.Name, Hostname: s.Hostname, Region: s.Region, Architecture: s.Architecture,
			Labels: s.Labels, State: s.State, Health: s.Health,
			GPUType: s.GPUType, GPUCount: s.GPUCount, MaxWorkspaces: s.MaxWorkspaces, Workspaces: u.Workspaces,
			Configured: fleet.Resources{CPU: s.TotalCPU, MemoryMB: s.TotalMemoryMB, DiskGB: s.TotalDiskGB, BandwidthMbps: s.TotalBandwidthMbps},
			Reserved:   u.Reserved,
		}
		if m, ok := live[s.ID]; ok && m.MetaErr == "" && m.State != gossip.StateDead && m.State != gossip.StateLeft {
			meta := m.Meta
			n.Real = placement.Measured{
				CPU: float64(meta.CPUMilli) / 1000 * max(c.cfg.CPUOvercommit, 1), MemoryMB: meta.MemTotalMB, MemoryFreeMB: meta.MemFreeMB,
				DiskGB: meta.DiskTotalGB, DiskFreeGB: meta.DiskFreeGB,
			}
			if n.Architecture == "" {
				n.Architecture = meta.Architecture
			}
			if n.GPUType == "" && meta.GPUCount > 0 {
				n.GPUType, n.GPUCount = meta.GPUType, meta.GPUCount
			}
		}
		if c.Health != nil {
			if h, ok := c.Health.Health(s.ID); ok {
				n.Health = h
			}
		}
		snap.Nodes[i] = n
	}
	return snap, nil
}
