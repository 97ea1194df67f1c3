package orchestrator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// TestPruneEventsOnce: events older than the retention go, newer ones
// stay; a retention of 0 keeps everything.
func TestPruneEventsOnce(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ages := map[string]time.Duration{"ancient": 400 * 24 * time.Hour, "old": 31 * 24 * time.Hour,
		"recent": 29 * 24 * time.Hour, "new": time.Minute}
	tests := []struct {
		name       string
		retention  time.Duration
		wantPruned int64
		wantKept   []string
	}{
		{"the default: 30 days", orchestrator.DefaultEventRetention, 2, []string{"new", "recent"}},
		{"one hour", time.Hour, 3, []string{"new"}},
		{"0 keeps every event", 0, 0, []string{"ancient", "new", "old", "recent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 1)
			ctx := context.Background()
			for kind, age := range ages {
				if _, err := r.db.AddEvent(ctx, registry.Event{At: now.Add(-age), Kind: kind, Message: kind}); err != nil {
					t.Fatal(err)
				}
			}
			o := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.EventRetention = tt.retention })
			if n := o.PruneEventsOnce(ctx, now); n != tt.wantPruned {
				t.Errorf("pruned %d, want %d", n, tt.wantPruned)
			}
			evs, err := r.db.ListEvents(ctx, registry.EventFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, e := range evs {
				kept = append(kept, e.Kind)
			}
			slices.Sort(kept) // the list's order is the insertion order, a map's here
			if diff := cmp.Diff(tt.wantKept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventRetentionValidated: a negative retention or a zero interval is
// refused at New.
func TestEventRetentionValidated(t *testing.T) {
	for _, change := range []func(*orchestrator.Config){
		func(c *orchestrator.Config) { c.EventRetention = -time.Hour },
		func(c *orchestrator.Config) { c.EventPruneInterval = 0 },
	} {
		cfg := orchestrator.Default()
		change(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", cfg)
		}
	}
}
