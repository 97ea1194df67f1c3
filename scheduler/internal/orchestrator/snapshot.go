package orchestrator

import (
	"context"

	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
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

// Snapshot is the whole fleet now, from memory (fleetView): registry rows,
// what their workspaces reserve, the capacity each agent gossips, and
// health.
func (c *core) Snapshot(ctx context.Context) (Snapshot, error) {
	return c.view.snapshot(ctx, nil, "")
}
