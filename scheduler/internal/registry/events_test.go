package registry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestEvents(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	in := []Event{
		{At: base, Kind: EventPlacementFailed, WorkspaceID: "w1", Message: "no server fits",
			Data: map[string]any{"reasons": []any{"insufficient memory on 3 servers"}}},
		{At: base.Add(time.Second), Kind: "custom", ServerID: "s1", Message: "one"},
		{At: base.Add(2 * time.Second), Kind: "custom", ServerID: "s1", WorkspaceID: "w1", Message: "two"},
		{At: base.Add(3 * time.Second), Kind: "custom", ServerID: "s2", Message: "three"},
	}
	for i := range in {
		id, err := db.AddEvent(ctx, in[i])
		if err != nil {
			t.Fatalf("AddEvent: %v", err)
		}
		in[i].ID = id
	}
	tests := []struct {
		name   string
		filter EventFilter
		want   []int // indexes into in, newest first
	}{
		{"all", EventFilter{}, []int{3, 2, 1, 0}},
		{"by server", EventFilter{ServerID: "s1"}, []int{2, 1}},
		{"by workspace", EventFilter{WorkspaceID: "w1"}, []int{2, 0}},
		{"by both", EventFilter{ServerID: "s1", WorkspaceID: "w1"}, []int{2}},
		{"limit", EventFilter{Limit: 2}, []int{3, 2}},
		{"no match", EventFilter{ServerID: "nope"}, []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListEvents(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			want := []Event{}
			for _, i := range tt.want {
				want = append(want, in[i])
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListEvents (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("kind required", func(t *testing.T) {
		if _, err := db.AddEvent(ctx, Event{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddEvent without kind: got %v, want ErrInvalid", err)
		}
	})
	t.Run("zero time means now", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		if _, err := db.AddEvent(ctx, Event{Kind: "x"}); err != nil {
			t.Fatal(err)
		}
		got, err := db.ListEvents(ctx, EventFilter{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].At.Before(before) {
			t.Errorf("newest event: got %+v, want one stamped now", got)
		}
	})
}

func TestListEventsDefaultLimit(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	for i := range DefaultEventLimit + 5 {
		if _, err := db.AddEvent(ctx, Event{Kind: "x", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ListEvents(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != DefaultEventLimit {
		t.Errorf("ListEvents: got %d events, want %d", len(got), DefaultEventLimit)
	}
}

func TestPruneEvents(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := db.AddEvent(ctx, Event{At: base.Add(time.Duration(i) * time.Hour), Kind: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.PruneEvents(ctx, base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("PruneEvents: got %d deleted, want 2", n)
	}
	left, err := db.ListEvents(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 {
		t.Errorf("events left: got %d, want 3", len(left))
	}
}
