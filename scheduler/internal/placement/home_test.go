package placement

import (
	"testing"

	"berth/scheduler/internal/fleet"
)

func TestHomeServerGoesFirst(t *testing.T) {
	node := func(id string, reservedCPU float64, state fleet.State) Node {
		return Node{ID: id, State: state, Health: fleet.HealthHealthy,
			Configured: fleet.Resources{CPU: 8, MemoryMB: 16384, DiskGB: 100},
			Reserved:   fleet.Resources{CPU: reservedCPU, MemoryMB: int64(reservedCPU) * 2048}}
	}
	req := Request{Resources: fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}}
	tests := []struct {
		name       string
		strategy   Strategy
		home       string
		homeState  fleet.State
		wantChosen string
		wantReason string
	}{
		{"no home: spread picks the emptier", Spread, "", fleet.StateActive, "a", reasonSpread},
		{"home wins over spread", Spread, "b", fleet.StateActive, "b", reasonHome},
		{"home wins over best fit", BestFit, "a", fleet.StateActive, "a", reasonHome},
		{"home draining: spread", Spread, "b", fleet.StateDraining, "a", reasonSpread},
		{"home unknown: spread", Spread, "zz", fleet.StateActive, "a", reasonSpread},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := []Node{node("a", 0, fleet.StateActive), node("b", 4, tt.homeState)}
			q := req
			q.Strategy, q.HomeServerID = tt.strategy, tt.home
			dec, err := Place(nodes, q)
			if err != nil {
				t.Fatal(err)
			}
			if dec.Chosen.NodeID != tt.wantChosen || dec.Reason != tt.wantReason {
				t.Errorf("chose %s (%q); want %s (%q)", dec.Chosen.NodeID, dec.Reason, tt.wantChosen, tt.wantReason)
			}
		})
	}
}
