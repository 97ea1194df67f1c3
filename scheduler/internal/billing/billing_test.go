package billing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/podexapi"
	"berth/scheduler/internal/podexapi/podexapitest"
	"berth/scheduler/internal/registry"
)

const token = "svc-token"

func testConfig() Config {
	c := Default()
	c.Interval, c.RetryBase, c.RetryMax, c.BatchSize = 10*time.Second, time.Nanosecond, time.Nanosecond, 3
	return c
}

func apiClient(t *testing.T, url string) *podexapi.Client {
	t.Helper()
	cfg := podexapi.DefaultConfig()
	cfg.BaseURL, cfg.Token, cfg.Attempts, cfg.BackoffBase, cfg.BackoffMax = url, token, 1, time.Millisecond, time.Millisecond
	c, err := podexapi.NewClient(cfg, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openDB(t *testing.T, path string) *registry.DB {
	t.Helper()
	db, err := registry.Open(context.Background(), path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// running puts workspace id of user u on server s1, running since since.
func running(t *testing.T, db *registry.DB, id string, since time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.GetServer(ctx, "s1"); err != nil {
		if _, err := db.CreateServer(ctx, registry.Server{ID: "s1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ReserveAndInsert(ctx, registry.Workspace{ID: id, UserID: "u", SessionID: "sess", Tier: "starter", ServerID: "s1"},
		registry.Credentials{}, registry.Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error { w.ContainerID = "c-" + id; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetWorkspaceStatusAt(ctx, id, fleet.StatusRunning, "", since); err != nil {
		t.Fatal(err)
	}
}

func pending(t *testing.T, db *registry.DB) int {
	t.Helper()
	s, err := db.BillingSummary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Pending
}

// A workspace run billed across many intervals, the API failing half its
// calls (before or after doing them), the scheduler "killed" (the registry
// closed and reopened, a new Service started) at random points: the API
// counts exactly the running time, each event once, and an id never names
// two events.
func TestExactlyOnceAcrossFailuresAndRestarts(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 99))
			api := podexapitest.New(token)
			defer api.Close()
			api.SetFailRate(0.5, seed)
			path := filepath.Join(t.TempDir(), "berth.db")
			db := openDB(t, path)
			start := time.Now().Add(-time.Hour).Truncate(time.Second).Add(300 * time.Millisecond)
			newService := func() *Service {
				s, err := New(testConfig(), db, apiClient(t, api.URL), nil, hclog.NewNullLogger())
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Start(ctx); err != nil {
					t.Fatal(err)
				}
				return s
			}
			svc := newService()
			running(t, db, "w", start)
			at := start
			for range 40 {
				at = at.Add(time.Duration(rng.IntN(15000)) * time.Millisecond)
				if _, err := db.CloseDueIntervals(ctx, at, svc.cfg.Interval); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(2) == 0 {
					_, _ = svc.Flush(ctx)
				}
				if rng.IntN(8) == 0 { // a kill: nothing in memory survives
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
					db = openDB(t, path)
					svc = newService()
				}
			}
			end := at.Add(1700 * time.Millisecond)
			if _, err := db.SetWorkspaceStatusAt(ctx, "w", fleet.StatusStopped, "", end); err != nil {
				t.Fatal(err)
			}
			for i := 0; pending(t, db) > 0; i++ {
				if i > 1000 {
					t.Fatalf("outbox not drained: %d pending", pending(t, db))
				}
				_, _ = svc.Flush(ctx)
			}
			defer db.Close()
			want := int64(end.Sub(start) / time.Second)
			if got := api.UsageSeconds("w"); got != want {
				t.Errorf("API counted %d s, want %d s (the running time)", got, want)
			}
			if v := api.Violations(); len(v) != 0 {
				t.Errorf("violations: %v", v)
			}
			t.Logf("%d events, %d sent again and counted once, %d calls failed on purpose",
				len(api.Usage("w")), api.Duplicates(), api.Failed("billing.usage_record"))
		})
	}
}

// recorder is a hand-written Recorder: it refuses batches that hold a
// poisoned id, or fails every call when down.
type recorder struct {
	poison  string
	down    bool
	batches [][]string
}

func (r *recorder) RecordUsage(_ context.Context, events []podexapi.UsageEvent) error {
	var ids []string
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	r.batches = append(r.batches, ids)
	if r.down {
		return fmt.Errorf("test: %w", podexapi.ErrUnavailable)
	}
	if r.poison != "" && slices.Contains(ids, r.poison) {
		return fmt.Errorf("test: %w", podexapi.ErrRejected)
	}
	return nil
}

// A refused batch is split: its events go alone, so one bad event holds up
// only itself; an API that cannot be reached stops the flush.
func TestFlushRefusedAndUnavailable(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "berth.db"))
	defer db.Close()
	rec := &recorder{}
	svc, err := New(testConfig(), db, rec, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	running(t, db, "w", start)
	for i := 1; i <= 5; i++ {
		if _, err := db.CloseDueIntervals(ctx, start.Add(time.Duration(i)*10*time.Second), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	due, _ := db.DueUsage(ctx, time.Now(), 10)
	if len(due) != 5 {
		t.Fatalf("%d rows due, want 5", len(due))
	}

	rec.down = true
	if n, err := svc.Flush(ctx); n != 0 || !errors.Is(err, podexapi.ErrUnavailable) || len(rec.batches) != 1 {
		t.Errorf("API down: sent %d, err %v, %d batches; want 0, unavailable, 1 batch (the flush stops)", n, err, len(rec.batches))
	}

	rec.down, rec.poison, rec.batches = false, due[1].EventID, nil
	sent := 0
	for range 3 { // the retry wait is a nanosecond: each flush tries every row once
		n, err := svc.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	if sent != 4 {
		t.Errorf("with a poisoned event: sent %d, want the 4 others", sent)
	}
	if got := pending(t, db); got != 1 {
		t.Errorf("pending: %d, want the poisoned one", got)
	}
	left, _ := db.ListUsage(ctx, registry.UsageFilter{Pending: true})
	if len(left) != 1 || left[0].EventID != rec.poison || !left[0].Solo || left[0].Attempts < 2 {
		t.Errorf("left: %+v; want the poisoned row, alone, tried again", left)
	}
	refused := rec.batches[0] // the first batch held the poisoned event
	if !slices.Contains(refused, rec.poison) {
		t.Fatalf("first batch %v does not hold the poisoned event", refused)
	}
	for _, b := range rec.batches[1:] {
		for _, id := range b {
			if slices.Contains(refused, id) && len(b) != 1 {
				t.Errorf("batches %v: an event of the refused batch went with others afterwards", rec.batches)
			}
		}
	}
}

func TestPick(t *testing.T) {
	rows := func(solo ...bool) []registry.UsageRecord {
		out := make([]registry.UsageRecord, len(solo))
		for i, s := range solo {
			out[i] = registry.UsageRecord{Seq: int64(i + 1), Solo: s}
		}
		return out
	}
	seqs := func(rs []registry.UsageRecord) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	tests := []struct {
		name string
		due  []registry.UsageRecord
		n    int
		want []int64
	}{
		{"none", nil, 3, nil},
		{"a batch of n", rows(false, false, false, false), 3, []int64{1, 2, 3}},
		{"up to the first solo", rows(false, true, false), 3, []int64{1}},
		{"a solo first goes alone", rows(true, false, false), 3, []int64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqs(pick(tt.due, tt.n)); !slices.Equal(got, tt.want) {
				t.Errorf("pick = %v, want %v", got, tt.want)
			}
		})
	}
}

// Events carry the podex shape: compute_seconds, quantity = duration, the
// container and server, created at the interval's end.
func TestEvent(t *testing.T) {
	end := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	got := Event(registry.UsageRecord{EventID: "cs-1", UserID: "u", SessionID: "s", WorkspaceID: "w", Tier: "pro",
		ServerID: "s1", ContainerID: "c1", Seconds: 61, End: end})
	want := podexapi.UsageEvent{ID: "cs-1", UserID: "u", SessionID: "s", WorkspaceID: "w", UsageType: "compute_seconds",
		Quantity: 61, Unit: "seconds", Tier: "pro", DurationSeconds: 61,
		Metadata: podexapi.UsageMetadata{ContainerID: "c1", ServerID: "s1"}, CreatedAt: "2026-01-05T10:00:00Z"}
	if got != want {
		t.Errorf("Event = %+v, want %+v", got, want)
	}
}
