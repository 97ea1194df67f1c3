package admin_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
)

// GET /admin/billing shows the outbox (depth, events with their sending
// state) and the open intervals; the panel's snapshot carries the summary.
func TestBillingView(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "ws-1")
	if _, _, err := r.db.StartBilling(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	r.reserve("w1", "ws-1", 1, 512)
	r.reserve("w2", "ws-1", 1, 512)
	base := time.Now().Add(-time.Hour)
	for _, id := range []string{"w1", "w2"} {
		if _, err := r.db.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error { w.ContainerID = "c-" + id; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := r.db.SetWorkspaceStatusAt(ctx, id, fleet.StatusRunning, "", base); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.db.SetWorkspaceStatusAt(ctx, "w1", fleet.StatusStopped, "", base.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}

	resp := r.admin("GET", "/admin/billing", nil)
	wantStatus(t, resp, 200)
	var got admin.BillingReport
	if err := json.Unmarshal(resp.body, &got); err != nil {
		t.Fatal(err)
	}
	if s := got.Summary; !s.Enabled || s.Pending != 1 || s.PendingSeconds != 90 || s.OpenIntervals != 1 || s.OldestPending == nil {
		t.Errorf("summary = %+v; want billing on, 1 event of 90 s pending, 1 open interval", s)
	}
	if len(got.Events) != 1 || got.Events[0].WorkspaceID != "w1" || got.Events[0].Seconds != 90 ||
		got.Events[0].Reason != "stopped" || got.Events[0].SentAt != nil {
		t.Errorf("events = %+v", got.Events)
	}
	if len(got.OpenIntervals) != 1 || got.OpenIntervals[0].WorkspaceID != "w2" {
		t.Errorf("open intervals = %+v, want w2", got.OpenIntervals)
	}
	resp = r.admin("GET", "/admin/billing?workspace_id=w2&pending=true", nil)
	wantStatus(t, resp, 200)
	got = admin.BillingReport{}
	_ = json.Unmarshal(resp.body, &got)
	if len(got.Events) != 0 || len(got.OpenIntervals) != 1 {
		t.Errorf("w2 only: %+v", got)
	}
	wantStatus(t, r.admin("GET", "/admin/billing?limit=0", nil), 400)
	wantStatus(t, r.call("GET", "/admin/billing", nil, nil), 401)

	o := waitFor(t, sseEvents(t, r.url, r.session()), 2*time.Second, "a snapshot", func(admin.Overview) bool { return true })
	if o.Billing == nil || o.Billing.Pending != 1 {
		t.Errorf("panel billing = %+v, want the outbox depth 1", o.Billing)
	}
}
