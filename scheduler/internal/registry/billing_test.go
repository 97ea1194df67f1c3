package registry

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
)

func TestSplitInterval(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 250_000_000, time.UTC) // a fraction in the mark
	limit := t0.Add(time.Hour)
	tests := []struct {
		name     string
		at       time.Time
		wantSecs int64
		wantNext time.Time
	}{
		{"whole seconds", t0.Add(60 * time.Second), 60, t0.Add(60 * time.Second)},
		{"fraction carried", t0.Add(60*time.Second + 900*time.Millisecond), 60, t0.Add(60 * time.Second)},
		{"under a second bills nothing", t0.Add(999 * time.Millisecond), 0, t0},
		{"at the mark", t0, 0, t0},
		{"before the mark (an old event)", t0.Add(-5 * time.Second), 0, t0},
		{"after the limit (a clock ahead)", limit.Add(10 * time.Second), 3600, limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secs, next := splitInterval(t0, tt.at, limit)
			if secs != tt.wantSecs || !next.Equal(tt.wantNext) {
				t.Errorf("splitInterval = %d, %v; want %d, %v", secs, next, tt.wantSecs, tt.wantNext)
			}
		})
	}
}

// billingDB is a registry with billing on, a server and a workspace "w"
// of user u in session s, tier starter, with container c1, still creating.
func billingDB(t *testing.T) (*DB, string) {
	t.Helper()
	db, path := openTestDB(t)
	ctx := context.Background()
	if _, _, err := db.StartBilling(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	mustCreateServer(t, db, Server{ID: "s1"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", SessionID: "s", Tier: "starter", ServerID: "s1"}, Limits{})
	if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.ContainerID = "c1"; return nil }); err != nil {
		t.Fatal(err)
	}
	return db, path
}

func setStatusAt(t *testing.T, db *DB, status fleet.Status, at time.Time) {
	t.Helper()
	if _, err := db.SetWorkspaceStatusAt(context.Background(), "w", status, "", at); err != nil {
		t.Fatalf("SetWorkspaceStatusAt(%s): %v", status, err)
	}
}

// billed is the outbox as (seconds, reason, tier) triples, oldest first,
// and the total; it checks that each row's times span its seconds.
type billedRow struct {
	Seconds int64
	Reason  string
	Tier    string
}

func billed(t *testing.T, db *DB) ([]billedRow, int64) {
	t.Helper()
	rows, err := db.ListUsage(context.Background(), UsageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []billedRow
	var total int64
	for i := len(rows) - 1; i >= 0; i-- { // ListUsage is newest first
		u := rows[i]
		out = append(out, billedRow{u.Seconds, u.Reason, u.Tier})
		total += u.Seconds
		if got := u.End.Sub(u.Start); got != time.Duration(u.Seconds)*time.Second {
			t.Errorf("row %s: %s to %s is %s, want %d s", u.EventID, u.Start, u.End, got, u.Seconds)
		}
	}
	return out, total
}

func marks(t *testing.T, db *DB) []BillingMark {
	t.Helper()
	m, err := db.ListBillingMarks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every way a workspace stops being billed closes its interval at the
// moment given, into the outbox, in the transaction of the change.
func TestBillingIntervals(t *testing.T) {
	ctx := context.Background()
	base := normTime(time.Now().Add(-2 * time.Hour))
	sec := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name      string
		steps     func(t *testing.T, db *DB)
		want      []billedRow
		wantMarks int
	}{
		{
			name: "stop at the event's time",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				setStatusAt(t, db, fleet.StatusStopped, sec(125.4))
			},
			want: []billedRow{{125, "stopped", "starter"}},
		},
		{
			name: "intervals carry the fraction; the total is the running time",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0.3))
				for _, at := range []float64{60.9, 61.2, 90, 121.5} {
					if _, err := db.CloseDueIntervals(ctx, sec(at), 60*time.Second); err != nil {
						t.Fatal(err)
					}
				}
				setStatusAt(t, db, fleet.StatusStopped, sec(125.6))
			},
			want: []billedRow{{60, "interval", "starter"}, {61, "interval", "starter"}, {4, "stopped", "starter"}},
		},
		{
			name: "a scale starts a new interval with the new tier",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.Tier = "pro"; return nil }); err != nil {
					t.Fatal(err)
				}
			},
			want:      []billedRow{{7200, "tier_changed", "starter"}},
			wantMarks: 1,
		},
		{
			name: "a new container starts a new interval",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.ContainerID = "c2"; return nil }); err != nil {
					t.Fatal(err)
				}
			},
			want:      []billedRow{{7200, "placement_changed", "starter"}},
			wantMarks: 1,
		},
		{
			name: "server lost: error at the time the server went down",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				if _, err := db.SetWorkspaceStatusAt(ctx, "w", fleet.StatusError, "server_lost", sec(30)); err != nil {
					t.Fatal(err)
				}
			},
			want: []billedRow{{30, "error", "starter"}},
		},
		{
			name: "mark for deletion",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				setStatusAt(t, db, fleet.StatusPendingDeletion, sec(10))
			},
			want: []billedRow{{10, "pending_deletion", "starter"}},
		},
		{
			name: "delete closes at the delete",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				if err := db.DeleteWorkspace(ctx, "w"); err != nil {
					t.Fatal(err)
				}
			},
			want: []billedRow{{7200, "deleted", "starter"}},
		},
		{
			name: "a move to another server closes it (creating)",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				mustCreateServer(t, db, Server{ID: "s2"})
				if _, err := db.MoveWorkspace(ctx, "w", "s2", Limits{}); err != nil {
					t.Fatal(err)
				}
			},
			want: []billedRow{{7200, "creating", "starter"}},
		},
		{
			name: "an event older than the mark bills nothing",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(10))
				setStatusAt(t, db, fleet.StatusStopped, sec(5))
			},
		},
		{
			name: "restart after stop opens a new interval",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				setStatusAt(t, db, fleet.StatusStopped, sec(20))
				setStatusAt(t, db, fleet.StatusRunning, sec(100))
				setStatusAt(t, db, fleet.StatusError, sec(130))
			},
			want: []billedRow{{20, "stopped", "starter"}, {30, "error", "starter"}},
		},
		{
			name: "a start time before the last billed end opens at that end",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				setStatusAt(t, db, fleet.StatusError, sec(50))
				setStatusAt(t, db, fleet.StatusRunning, sec(0)) // Docker's StartedAt: the same run
				setStatusAt(t, db, fleet.StatusStopped, sec(70))
			},
			want: []billedRow{{50, "error", "starter"}, {20, "stopped", "starter"}},
		},
		{
			name: "activity and resizes leave the interval alone",
			steps: func(t *testing.T, db *DB) {
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.LastActivity = time.Now(); return nil }); err != nil {
					t.Fatal(err)
				}
				if _, err := db.ResizeWorkspace(ctx, "w", fleet.Resources{CPU: 1}, Limits{}); err != nil {
					t.Fatal(err)
				}
			},
			wantMarks: 1,
		},
		{
			name: "billing off: nothing is recorded",
			steps: func(t *testing.T, db *DB) {
				if _, err := db.StopBilling(ctx); err != nil {
					t.Fatal(err)
				}
				setStatusAt(t, db, fleet.StatusRunning, sec(0))
				setStatusAt(t, db, fleet.StatusStopped, sec(60))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case's own two hours: a delete or move closes at now.
			base = normTime(time.Now().Add(-2 * time.Hour))
			db, _ := billingDB(t)
			tt.steps(t, db)
			got, _ := billed(t, db)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outbox (-want +got):\n%s", diff)
			}
			if got := len(marks(t, db)); got != tt.wantMarks {
				t.Errorf("open intervals: got %d, want %d", got, tt.wantMarks)
			}
		})
	}
}

// The scale case: the new tier's interval starts where the old one's
// billed seconds end, so no second is lost or billed twice.
func TestBillingScaleContinuity(t *testing.T) {
	ctx := context.Background()
	db, _ := billingDB(t)
	base := normTime(time.Now().Add(-time.Hour))
	setStatusAt(t, db, fleet.StatusRunning, base)
	if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.Tier = "pro"; return nil }); err != nil {
		t.Fatal(err)
	}
	m := marks(t, db)
	rows, _ := billed(t, db)
	if len(m) != 1 || len(rows) != 1 {
		t.Fatalf("got marks %v and rows %v, want one of each", m, rows)
	}
	if want := base.Add(time.Duration(rows[0].Seconds) * time.Second); m[0].Tier != "pro" || !m[0].Since.Equal(want) {
		t.Errorf("mark after the scale: %+v, want tier pro since %s", m[0], want)
	}
}

// A mark outlives the process: reopened and started again, billing goes
// on from the mark (the time the scheduler was down is billed once);
// StartBilling opens marks for running rows that lack one and closes those
// whose rows no longer run.
func TestStartBilling(t *testing.T) {
	localOnly(t)
	ctx := context.Background()
	db, path := billingDB(t)
	base := normTime(time.Now().Add(-time.Hour))
	setStatusAt(t, db, fleet.StatusRunning, base)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, path)
	defer db.Close()
	opened, closed, err := db.StartBilling(ctx, time.Now())
	if err != nil || opened != 0 || closed != 0 {
		t.Fatalf("StartBilling after reopen = %d, %d, %v; want 0, 0, nil", opened, closed, err)
	}
	if m := marks(t, db); len(m) != 1 || !m[0].Since.Equal(base) {
		t.Fatalf("marks after reopen: %+v, want one since %s", m, base)
	}

	// A mark whose row stopped meanwhile (written behind the registry's
	// back) closes at the row's last update; a mark without a row goes.
	if _, err := db.write.Exec(`UPDATE workspaces SET status = 'stopped' WHERE id = 'w'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec(`INSERT INTO billing_marks VALUES ('gone', 'u', 's', 'starter', 's1', 'c', ?)`, formatTime(base)); err != nil {
		t.Fatal(err)
	}
	if _, closed, err := db.StartBilling(ctx, time.Now()); err != nil || closed != 2 {
		t.Fatalf("StartBilling = closed %d, %v; want 2", closed, err)
	}
	if m := marks(t, db); len(m) != 0 {
		t.Errorf("marks: %+v, want none", m)
	}
	if rows, _ := billed(t, db); len(rows) != 1 || rows[0].Reason != "stopped" {
		t.Errorf("outbox: %+v, want the stopped row's interval", rows)
	}

	// Billing off, a workspace starts: StartBilling opens its mark at at.
	if _, err := db.StopBilling(ctx); err != nil {
		t.Fatal(err)
	}
	setStatusAt(t, db, fleet.StatusRunning, base)
	at := normTime(time.Now())
	if opened, _, err := db.StartBilling(ctx, at); err != nil || opened != 1 {
		t.Fatalf("StartBilling = opened %d, %v; want 1", opened, err)
	}
	if m := marks(t, db); len(m) != 1 || !m[0].Since.Equal(at) {
		t.Errorf("marks: %+v, want one since %s", m, at)
	}
}

var eventIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// The outbox: due rows oldest first; a failed send waits for its next
// attempt and counts; an acknowledged row is no longer due and is pruned
// only after it was sent.
func TestUsageOutbox(t *testing.T) {
	ctx := context.Background()
	db, _ := billingDB(t)
	base := normTime(time.Now().Add(-time.Hour))
	setStatusAt(t, db, fleet.StatusRunning, base)
	for i := 1; i <= 3; i++ {
		if _, err := db.CloseDueIntervals(ctx, base.Add(time.Duration(i)*10*time.Second), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	due, err := db.DueUsage(ctx, now, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("DueUsage = %d rows, %v; want 3", len(due), err)
	}
	seen := map[string]bool{}
	for i, u := range due {
		if !eventIDPattern.MatchString(u.EventID) || seen[u.EventID] {
			t.Errorf("event id %q: want a fresh id matching %s", u.EventID, eventIDPattern)
		}
		seen[u.EventID] = true
		if i > 0 && u.Seq <= due[i-1].Seq {
			t.Errorf("due rows out of order: %d after %d", u.Seq, due[i-1].Seq)
		}
		if u.UserID != "u" || u.SessionID != "s" || u.WorkspaceID != "w" || u.ServerID != "s1" || u.ContainerID != "c1" || u.Seconds != 10 {
			t.Errorf("row %+v: want u/s/w on s1/c1, 10 s", u)
		}
	}
	if got, _ := db.DueUsage(ctx, now, 2); len(got) != 2 {
		t.Errorf("DueUsage limit 2: got %d rows", len(got))
	}

	next := now.Add(time.Minute)
	if err := db.MarkUsageFailed(ctx, []int64{due[0].Seq}, "API answered 503", next, true); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkUsageSent(ctx, []int64{due[1].Seq}, now); err != nil {
		t.Fatal(err)
	}
	got, _ := db.DueUsage(ctx, now, 10)
	if len(got) != 1 || got[0].Seq != due[2].Seq {
		t.Errorf("due after a failure and a send: %v, want only row %d", got, due[2].Seq)
	}
	later, _ := db.DueUsage(ctx, next, 10)
	if len(later) != 2 || later[0].Attempts != 1 || !later[0].Solo || later[0].LastError != "API answered 503" {
		t.Errorf("due at the next attempt: %+v, want the failed row (1 attempt, solo, its error) and the other", later)
	}

	sum, err := db.BillingSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := BillingSummary{Enabled: true, OpenIntervals: 1, Pending: 2, PendingSeconds: 20, Failing: 1,
		LastError: "API answered 503", Sent: 1, SentSeconds: 10}
	sum.OldestPending, sum.LastSent = time.Time{}, time.Time{}
	if diff := cmp.Diff(want, sum); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}

	if n, err := db.PruneUsage(ctx, now.Add(time.Second)); err != nil || n != 1 {
		t.Errorf("PruneUsage = %d, %v; want the one sent row", n, err)
	}
	if rows, _ := db.ListUsage(ctx, UsageFilter{Pending: true}); len(rows) != 2 {
		t.Errorf("pending after prune: %d rows, want 2", len(rows))
	}
}

// BenchmarkStatusChangeBilling measures a status change (running ⇄
// stopped) with billing off and on: on, each change also opens a mark or
// closes an interval into the outbox in the same transaction. The ratio of
// the two is the cost of billing on the write path.
func BenchmarkStatusChangeBilling(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("billing=%v", on), func(b *testing.B) {
			ctx := context.Background()
			db, _ := openTestDB(b)
			if on {
				if _, _, err := db.StartBilling(ctx, time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
			mustCreateServer(b, db, Server{ID: "s1"})
			mustReserve(b, db, Workspace{ID: "w", UserID: "u", SessionID: "s", Tier: "starter", ServerID: "s1", ContainerID: "c"}, Limits{})
			at := time.Now().Add(-240 * time.Hour) // far enough back for every change to close a 2 s interval
			i := 0
			for b.Loop() {
				status := fleet.StatusRunning
				if i%2 == 1 {
					status = fleet.StatusStopped
				}
				at = at.Add(2 * time.Second) // every interval closed is 2 s long
				if _, err := db.SetWorkspaceStatusAt(ctx, "w", status, "", at); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}
