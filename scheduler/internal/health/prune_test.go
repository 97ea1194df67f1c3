package health

import (
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
)

// A full probe round forgets servers no longer registered.
func TestPruneUnregistered(t *testing.T) {
	tr := New(nil, nil, nil, nil, DefaultOptions(), hclog.NewNullLogger())
	for _, id := range []string{"ws-1", "ws-2", "gone"} {
		tr.stateLocked(id)
	}
	tr.pruneUnregistered([]registry.Server{{ID: "ws-1"}, {ID: "ws-2"}})
	var ids []string
	for id := range tr.states {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"ws-1", "ws-2"}) {
		t.Errorf("states = %v, want ws-1 and ws-2", ids)
	}
}
