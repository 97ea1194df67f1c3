package health

import (
	"context"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
)

// Re-reading the registry forgets servers no longer registered (and gossip
// members never registered), and takes in new ones.
func TestPruneUnregistered(t *testing.T) {
	reg := &memRegistry{servers: []registry.ServerAddr{{ID: "ws-1", AgentPort: 1}, {ID: "ws-2", AgentPort: 2}}}
	tr := New(reg, nil, nil, func(s registry.Server) string { return s.ID }, DefaultOptions(), hclog.NewNullLogger())
	for _, id := range []string{"ws-1", "gone"} {
		tr.stateLocked(id)
	}
	tr.refresh(context.Background())
	var ids []string
	for id, s := range tr.states {
		ids = append(ids, id+"@"+s.addr)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"ws-1@ws-1", "ws-2@ws-2"}) {
		t.Errorf("states = %v, want ws-1 and ws-2 with their addresses", ids)
	}
}
