package registry

import (
	"berth/scheduler/internal/fleet"
	"context"
	"errors"
	"fmt"
	"strings"
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
				Settings: Settings{GitBranch: "feature/żółw", GitName: "Ada Lovelace", GitEmail: "ada@example.com",
					BaseImage: "ghcr.io/x/y:1@sha256:abc", RegionPreference: "eu-west"},
				AcknowledgedAt: created.Add(2*time.Second + 123),
				Reservation:    fleet.Resources{CPU: 1.5, MemoryMB: 3072, DiskGB: 20, BandwidthMbps: 100, GPUCount: 1},
			},
		},
		{
			name: "some settings",
			in: Workspace{ID: "some", UserID: "u", ServerID: "s", CreatedAt: created,
				Settings: Settings{GitBranch: "main", RegionPreference: "us"}},
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
			want.Status = fleet.StatusCreating
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
			want.AcknowledgedAt = normTime(want.AcknowledgedAt)
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
		status                    fleet.Status
	}{
		{"w1", "u1", "s1", "a", fleet.StatusRunning},
		{"w2", "u1", "s2", "b", fleet.StatusStopped},
		{"w3", "u2", "s3", "a", fleet.StatusError},
		{"w4", "u2", "s3", "b", fleet.StatusRunning},
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
		{"by one status", WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusRunning}}, []string{"w4", "w1"}},
		{"by statuses", WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusStopped, fleet.StatusError}}, []string{"w3", "w2"}},
		{"combined", WorkspaceFilter{UserID: "u2", ServerID: "b", Statuses: []fleet.Status{fleet.StatusRunning}}, []string{"w4"}},
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
				w.Status, w.StatusReason, w.ContainerID, w.Tier = fleet.StatusRunning, "started", "abc123", "pro"
				w.LastActivity = activity
				w.Metadata["last_billing_timestamp"] = "2026-06-01T12:00:00Z"
				w.Environment = map[string]string{"X": "y"}
				w.Image, w.AuthToken = "img:2", ""
				return nil
			},
			want: func(w *Workspace) {
				w.Status, w.StatusReason, w.ContainerID, w.Tier = fleet.StatusRunning, "started", "abc123", "pro"
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
		{
			name: "settings",
			fn:   func(w *Workspace) error { w.Settings = Settings{GitBranch: "dev", BaseImage: "img:3"}; return nil },
			want: func(w *Workspace) { w.Settings = Settings{GitBranch: "dev", BaseImage: "img:3"} },
		},
		{name: "bad setting", fn: func(w *Workspace) error { w.Settings.GitEmail = "a@x\r\n"; return nil }, wantErr: ErrInvalid},
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
		status      fleet.Status
		reason      string
		wantChanged bool
		wantErr     error
	}{
		{fleet.StatusRunning, "", true, nil},
		{fleet.StatusRunning, "", false, nil},
		{fleet.StatusError, "container died", true, nil},
		{fleet.StatusError, "container died again", false, nil},
		{fleet.StatusPendingDeletion, "", true, nil},
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
	if _, err := db.SetWorkspaceStatus(ctx, "nope", fleet.StatusRunning, ""); !errors.Is(err, ErrNotFound) {
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
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 4}}, Limits{})
	limits := Limits{CPU: 4}

	if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "x", UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 4}}, Credentials{}, limits); !errors.Is(err, ErrInsufficientCapacity) {
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
	if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "x", UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 4}}, Credentials{}, limits); err != nil {
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
		if _, err := db.ReserveAndInsert(ctx, Workspace{ID: fmt.Sprintf("w%d", i), UserID: "u", SessionID: "s", Status: fleet.StatusCreating, ServerID: "s1"}, Credentials{}, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetWorkspaceStatus(ctx, "w2", fleet.StatusError, "boom"); err != nil {
		t.Fatal(err)
	}
	got, err := db.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[fleet.Status]int{fleet.StatusCreating: 2, fleet.StatusError: 1}; !cmp.Equal(got, want) {
		t.Errorf("CountByStatus = %v, want %v", got, want)
	}
}

func TestStoredBadSettingsDoNotBlockUpdates(t *testing.T) {
	localOnly(t)
	// Settings are checked when written: a row that holds a setting stored
	// before the rule (a migrated row) still takes status updates.
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s"}, Limits{})
	if _, err := db.write.Exec(`UPDATE workspaces SET settings = '{"git_name":"a\nb"}' WHERE id = 'w'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetWorkspaceStatus(ctx, "w", fleet.StatusRunning, ""); err != nil {
		t.Errorf("SetWorkspaceStatus: %v", err)
	}
	_, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { w.Settings.GitEmail = "x\ty"; return nil })
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("UpdateWorkspace writing a bad setting: got %v, want ErrInvalid", err)
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	const secret = "x-access-token:ghp_s3cret"
	db, _ := openTestDB(t)
	mustCreateServer(t, db, Server{ID: "a"})
	mustCreateServer(t, db, Server{ID: "b"})
	if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "with", UserID: "u", ServerID: "a",
		Settings: Settings{GitBranch: "main"}}, Credentials{Git: secret}, Limits{}); err != nil {
		t.Fatal(err)
	}
	mustReserve(t, db, Workspace{ID: "without", UserID: "u", ServerID: "a"}, Limits{})

	tests := []struct {
		name    string
		id      string
		want    Credentials
		wantErr error
	}{
		{"stored", "with", Credentials{Git: secret}, nil},
		{"none stored", "without", Credentials{}, nil},
		{"unknown workspace", "nope", Credentials{}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.GetCredentials(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("GetCredentials(%s): got error %v, want %v", tt.id, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("GetCredentials(%s): got %+v, want %+v", tt.id, got, tt.want)
			}
		})
	}

	t.Run("never in a workspace read", func(t *testing.T) {
		w, err := db.GetWorkspace(ctx, "with")
		if err != nil {
			t.Fatal(err)
		}
		list, err := db.ListWorkspaces(ctx, WorkspaceFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []any{w, list} {
			if s := fmt.Sprintf("%+v", v); strings.Contains(s, "s3cret") {
				t.Errorf("credentials in %T: %s", v, s)
			}
		}
		if cols := columnsContaining(t, db.read, "workspaces", "s3cret"); len(cols) > 0 {
			t.Errorf("credentials in workspaces columns %v", cols)
		}
	})

	t.Run("kept by updates and moves", func(t *testing.T) {
		if _, err := db.UpdateWorkspace(ctx, "with", func(w *Workspace) error { w.Tier = "pro"; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := db.MoveWorkspace(ctx, "with", "b", Limits{}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.GetCredentials(ctx, "with"); err != nil || got.Git != secret {
			t.Errorf("GetCredentials after update and move: got %+v (err %v), want %q", got, err, secret)
		}
	})

	t.Run("deleted with the workspace", func(t *testing.T) {
		countCreds := func() int {
			t.Helper()
			var n int
			if err := db.read.QueryRow("SELECT COUNT(*) FROM workspace_credentials WHERE workspace_id = 'with'").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := countCreds(); n != 1 {
			t.Fatalf("credentials rows before delete: got %d, want 1", n)
		}
		if deleted, err := db.DeleteWorkspaceIf(ctx, "with", func(Workspace) bool { return false }); err != nil || deleted {
			t.Fatalf("DeleteWorkspaceIf refusing: got %v (err %v), want false", deleted, err)
		}
		if n := countCreds(); n != 1 {
			t.Errorf("credentials rows after a refused delete: got %d, want 1", n)
		}
		if err := db.DeleteWorkspace(ctx, "with"); err != nil {
			t.Fatal(err)
		}
		if n := countCreds(); n != 0 {
			t.Errorf("credentials rows after delete: got %d, want 0", n)
		}
		if _, err := db.GetCredentials(ctx, "with"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetCredentials after delete: got %v, want ErrNotFound", err)
		}
		// The id can be used again, with other credentials.
		if _, err := db.ReserveAndInsert(ctx, Workspace{ID: "with", UserID: "u", ServerID: "a"},
			Credentials{Git: "new"}, Limits{}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.GetCredentials(ctx, "with"); err != nil || got.Git != "new" {
			t.Errorf("GetCredentials after re-create: got %+v (err %v), want new", got, err)
		}
	})
}

func TestAcknowledgedAt(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	stored := at.UTC().Truncate(time.Microsecond)
	tests := []struct {
		name    string
		initial time.Time // AcknowledgedAt before fn
		fn      func(*Workspace)
		want    time.Time
		wantErr error
	}{
		{name: "set", fn: func(w *Workspace) { w.AcknowledgedAt = at }, want: stored},
		{name: "left unset", fn: func(w *Workspace) { w.Tier = "pro" }},
		{name: "kept by other updates", initial: at, fn: func(w *Workspace) { w.Tier = "pro" }, want: stored},
		{name: "set again to the same time", initial: at, fn: func(w *Workspace) { w.AcknowledgedAt = at }, want: stored},
		{name: "cannot be changed", initial: at, fn: func(w *Workspace) { w.AcknowledgedAt = at.Add(time.Second) },
			want: stored, wantErr: ErrInvalid},
		{name: "cannot be cleared", initial: at, fn: func(w *Workspace) { w.AcknowledgedAt = time.Time{} },
			want: stored, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "s"})
			mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s"}, Limits{})
			if !tt.initial.IsZero() {
				if _, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error {
					w.AcknowledgedAt = tt.initial
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := db.UpdateWorkspace(ctx, "w", func(w *Workspace) error { tt.fn(w); return nil })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UpdateWorkspace: got %v, want %v", err, tt.wantErr)
			}
			if err == nil && !got.AcknowledgedAt.Equal(tt.want) {
				t.Errorf("returned AcknowledgedAt: got %v, want %v", got.AcknowledgedAt, tt.want)
			}
			w, err := db.GetWorkspace(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			if !w.AcknowledgedAt.Equal(tt.want) {
				t.Errorf("stored AcknowledgedAt: got %v, want %v", w.AcknowledgedAt, tt.want)
			}
			// A move keeps it: the moved workspace is still the answered one.
			moved, err := db.MoveWorkspace(ctx, "w", "s", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !moved.AcknowledgedAt.Equal(tt.want) {
				t.Errorf("AcknowledgedAt after move: got %v, want %v", moved.AcknowledgedAt, tt.want)
			}
		})
	}
}
