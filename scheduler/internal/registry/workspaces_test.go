package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestWorkspaceFieldsRoundTrip(t *testing.T) {
	created := time.Date(2026, 2, 3, 4, 5, 6, 789012000, time.UTC)
	tests := []struct {
		name string
		in   Workspace
	}{
		{
			name: "every field",
			in: Workspace{
				ID: "5f0c4a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f", UserID: "user-1", SessionID: "session-1",
				StatusReason: "", Tier: "starter_arm", Host: "custom-host", Port: 8081, ServerID: "s",
				ContainerID: "", Repos: []string{}, CreatedAt: created, LastActivity: created.Add(time.Minute),
				Metadata: map[string]any{
					"last_billing_timestamp": "2026-02-03T04:05:06Z",
					"stale_discovery":        true,
					"count":                  float64(3),
					"nested":                 map[string]any{"list": []any{"a", float64(1), nil}},
				},
				AuthToken: "tok", Image: "podex/workspace:arm64",
				Repositories: []string{"https://github.com/a/b.git", "git@github.com:c/d.git"},
				Environment:  map[string]string{"GITHUB_TOKEN": "ghp_x", "EMPTY": "", "UNICODE": "żółw ✓"},
				Config:       json.RawMessage(`{"tier":"starter_arm","repos":["https://github.com/a/b.git"],"storage_gb":20,"mount_path":null}`),
				Reservation:  Resources{CPU: 1.5, MemoryMB: 3072, DiskGB: 20, BandwidthMbps: 100, GPUCount: 1},
			},
		},
		{
			name: "empty JSON fields come back empty, not nil",
			in:   Workspace{ID: "minimal", UserID: "u", ServerID: "s", CreatedAt: created},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "s"})
			got := mustReserve(t, db, tt.in, Limits{})

			want := tt.in
			want.Status = StatusCreating
			want.Epoch = 1
			if want.Port == 0 {
				want.Port = DefaultPort
			}
			if want.Host == "" {
				want.Host = "s"
			}
			if want.LastActivity.IsZero() {
				want.LastActivity = want.CreatedAt
			}
			if want.Config == nil {
				want.Config = json.RawMessage("{}")
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Workspace{}, "UpdatedAt"), cmpOpts[0]); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if got.Repos == nil || got.Repositories == nil || got.Metadata == nil || got.Environment == nil {
				t.Errorf("nil JSON field: repos %v repositories %v metadata %v environment %v",
					got.Repos == nil, got.Repositories == nil, got.Metadata == nil, got.Environment == nil)
			}
		})
	}
}

func TestGetWorkspaceNotFound(t *testing.T) {
	db, _ := openTestDB(t)
	if _, err := db.GetWorkspace(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetWorkspace: got %v, want ErrNotFound", err)
	}
}

func TestListWorkspaces(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "a"})
	mustCreateServer(t, db, Server{ID: "b"})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []struct {
		id, user, session, server string
		status                    Status
	}{
		{"w1", "u1", "s1", "a", StatusRunning},
		{"w2", "u1", "s2", "b", StatusStopped},
		{"w3", "u2", "s3", "a", StatusError},
		{"w4", "u2", "s3", "b", StatusRunning},
	}
	for i, r := range rows {
		mustReserve(t, db, Workspace{ID: r.id, UserID: r.user, SessionID: r.session, ServerID: r.server,
			CreatedAt: base.Add(time.Duration(len(rows)-i) * time.Minute)}, Limits{}) // newest first
		if _, err := db.SetWorkspaceStatus(ctx, r.id, r.status, ""); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		filter WorkspaceFilter
		want   []string // in created_at order
	}{
		{"all", WorkspaceFilter{}, []string{"w4", "w3", "w2", "w1"}},
		{"by user", WorkspaceFilter{UserID: "u1"}, []string{"w2", "w1"}},
		{"by session", WorkspaceFilter{SessionID: "s3"}, []string{"w4", "w3"}},
		{"by server", WorkspaceFilter{ServerID: "a"}, []string{"w3", "w1"}},
		{"by one status", WorkspaceFilter{Statuses: []Status{StatusRunning}}, []string{"w4", "w1"}},
		{"by statuses", WorkspaceFilter{Statuses: []Status{StatusStopped, StatusError}}, []string{"w3", "w2"}},
		{"combined", WorkspaceFilter{UserID: "u2", ServerID: "b", Statuses: []Status{StatusRunning}}, []string{"w4"}},
		{"no match", WorkspaceFilter{UserID: "nobody"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := db.ListWorkspaces(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, w := range list {
				got = append(got, w.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ListWorkspaces (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpdateWorkspace(t *testing.T) {
	ctx := context.Background()
	errBoom := errors.New("boom")
	activity := time.Date(2026, 6, 1, 12, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name    string
		fn      func(*Workspace) error
		want    func(*Workspace) // applied to the original row; nil when an error is wanted
		wantErr error
	}{
		{
			name: "descriptive fields",
			fn: func(w *Workspace) error {
				w.Status, w.StatusReason, w.ContainerID, w.Tier = StatusRunning, "started", "abc123", "pro"
				w.LastActivity = activity
				w.Metadata["last_billing_timestamp"] = "2026-06-01T12:00:00Z"
				w.Environment = map[string]string{"X": "y"}
				w.Image, w.AuthToken = "img:2", ""
				return nil
			},
			want: func(w *Workspace) {
				w.Status, w.StatusReason, w.ContainerID, w.Tier = StatusRunning, "started", "abc123", "pro"
				w.LastActivity = activity
				w.Metadata = map[string]any{"k": "v", "last_billing_timestamp": "2026-06-01T12:00:00Z"}
				w.Environment = map[string]string{"X": "y"}
				w.Image, w.AuthToken = "img:2", ""
			},
		},
		{name: "no change still writes", fn: func(*Workspace) error { return nil }, want: func(*Workspace) {}},
		{name: "fn error aborts", fn: func(w *Workspace) error { w.Tier = "x"; return errBoom }, wantErr: errBoom},
		{name: "server id is immutable", fn: func(w *Workspace) error { w.ServerID = "b"; return nil }, wantErr: ErrInvalid},
		{name: "reservation is immutable", fn: func(w *Workspace) error { w.Reservation.CPU = 9; return nil }, wantErr: ErrInvalid},
		{name: "epoch is immutable", fn: func(w *Workspace) error { w.Epoch++; return nil }, wantErr: ErrInvalid},
		{name: "user is immutable", fn: func(w *Workspace) error { w.UserID = "x"; return nil }, wantErr: ErrInvalid},
		{name: "created at is immutable", fn: func(w *Workspace) error { w.CreatedAt = activity; return nil }, wantErr: ErrInvalid},
		{name: "bad status", fn: func(w *Workspace) error { w.Status = "sleeping"; return nil }, wantErr: ErrInvalid},
		{name: "bad config", fn: func(w *Workspace) error { w.Config = json.RawMessage("nope"); return nil }, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "a"})
			mustCreateServer(t, db, Server{ID: "b"})
			orig := mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "a", AuthToken: "t",
				Metadata: map[string]any{"k": "v"}, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Limits{})
			got, err := db.UpdateWorkspace(ctx, "w", tt.fn)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UpdateWorkspace: got %v, want %v", err, tt.wantErr)
			}
			stored, serr := db.GetWorkspace(ctx, "w")
			if serr != nil {
				t.Fatal(serr)
			}
			if err != nil {
				if diff := cmp.Diff(orig, stored, cmpOpts...); diff != "" {
					t.Errorf("failed update changed the row (-before +after):\n%s", diff)
				}
				return
			}
			want := orig
			want.Metadata = map[string]any{"k": "v"}
			tt.want(&want)
			if diff := cmp.Diff(want, stored, cmpopts.IgnoreFields(Workspace{}, "UpdatedAt"), cmpOpts[0]); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(stored, got, cmpOpts...); diff != "" {
				t.Errorf("returned vs stored (-stored +returned):\n%s", diff)
			}
			if !stored.UpdatedAt.After(orig.UpdatedAt) && !stored.UpdatedAt.Equal(orig.UpdatedAt) {
				t.Errorf("UpdatedAt: got %v, want at or after %v", stored.UpdatedAt, orig.UpdatedAt)
			}
		})
	}
	t.Run("unknown workspace", func(t *testing.T) {
		db, _ := openTestDB(t)
		_, err := db.UpdateWorkspace(ctx, "nope", func(*Workspace) error { return nil })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateWorkspace: got %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateWorkspaceBumpsUpdatedAt(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s"})
	orig := mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s"}, Limits{})
	time.Sleep(2 * time.Millisecond) // the clock must move past a microsecond
	got, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.Tier = "pro"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.After(orig.UpdatedAt) {
		t.Errorf("UpdatedAt: got %v, want after %v", got.UpdatedAt, orig.UpdatedAt)
	}
	if !got.CreatedAt.Equal(orig.CreatedAt) {
		t.Errorf("CreatedAt: got %v, want unchanged %v", got.CreatedAt, orig.CreatedAt)
	}
}

func TestSetWorkspaceStatus(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s"}, Limits{})

	steps := []struct {
		status      Status
		reason      string
		wantChanged bool
		wantErr     error
	}{
		{StatusRunning, "", true, nil},
		{StatusRunning, "", false, nil},
		{StatusError, "container died", true, nil},
		{StatusError, "container died again", false, nil},
		{StatusPendingDeletion, "", true, nil},
		{"bogus", "", false, ErrInvalid},
	}
	for i, st := range steps {
		t.Run(fmt.Sprintf("%d %s", i, st.status), func(t *testing.T) {
			changed, err := db.SetWorkspaceStatus(ctx, "w", st.status, st.reason)
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("SetWorkspaceStatus: got %v, want %v", err, st.wantErr)
			}
			if changed != st.wantChanged {
				t.Errorf("changed: got %v, want %v", changed, st.wantChanged)
			}
			if err != nil {
				return
			}
			w, err := db.GetWorkspace(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			if w.Status != st.status || w.StatusReason != st.reason {
				t.Errorf("stored: got %q %q, want %q %q", w.Status, w.StatusReason, st.status, st.reason)
			}
		})
	}
	if _, err := db.SetWorkspaceStatus(ctx, "nope", StatusRunning, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetWorkspaceStatus on unknown workspace: got %v, want ErrNotFound", err)
	}

	events, err := db.ListEvents(ctx, EventFilter{WorkspaceID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Kind == EventWorkspaceStatus {
			got = append(got, fmt.Sprintf("%s>%s", e.Data["from"], e.Data["to"]))
		}
	}
	want := []string{"error>pending_deletion", "running>error", "creating>running"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status events, newest first (-want +got):\n%s", diff)
	}
}

func TestDeleteWorkspace(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s", Reservation: Resources{CPU: 4}}, Limits{})
	limits := Limits{CPU: 4}

	if err := db.ReserveAndInsert(ctx, Workspace{ID: "x", UserID: "u", ServerID: "s", Reservation: Resources{CPU: 4}}, limits); !errors.Is(err, ErrInsufficientCapacity) {
		t.Fatalf("reserve on a full server: got %v, want ErrInsufficientCapacity", err)
	}
	if err := db.DeleteWorkspace(ctx, "w"); err != nil {
		t.Fatalf("DeleteWorkspace: %v", err)
	}
	if _, err := db.GetWorkspace(ctx, "w"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetWorkspace after delete: got %v, want ErrNotFound", err)
	}
	if err := db.DeleteWorkspace(ctx, "w"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteWorkspace: got %v, want ErrNotFound", err)
	}
	// The room is free again.
	if err := db.ReserveAndInsert(ctx, Workspace{ID: "x", UserID: "u", ServerID: "s", Reservation: Resources{CPU: 4}}, limits); err != nil {
		t.Errorf("reserve after delete: %v", err)
	}
}

func TestCountByStatus(t *testing.T) {
	ctx := context.Background()
	db, _ := openTestDB(t)
	if _, err := db.CreateServer(ctx, Server{ID: "s1", Hostname: "h", AgentPort: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := db.ReserveAndInsert(ctx, Workspace{ID: fmt.Sprintf("w%d", i), UserID: "u", SessionID: "s", Status: StatusCreating, ServerID: "s1"}, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetWorkspaceStatus(ctx, "w2", StatusError, "boom"); err != nil {
		t.Fatal(err)
	}
	got, err := db.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[Status]int{StatusCreating: 2, StatusError: 1}; !cmp.Equal(got, want) {
		t.Errorf("CountByStatus = %v, want %v", got, want)
	}
}
