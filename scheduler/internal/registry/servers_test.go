package registry

import (
	"berth/scheduler/internal/fleet"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fullServer has every configuration field set.
func fullServer(id string) Server {
	return Server{
		ID: id, Name: "name-" + id, Hostname: id + ".example.net", IPAddress: "10.0.0.7", AgentPort: 9443,
		Architecture: "arm64", Region: "eu", Labels: map[string]string{"rack": "r1", "disk": "nvme"},
		TLSCertPath: "/etc/berth/client.crt", TLSKeyPath: "/etc/berth/client.key", TLSCAPath: "/etc/berth/ca.crt",
		TotalCPU: 15.5, TotalMemoryMB: 65536, TotalDiskGB: 1000, TotalBandwidthMbps: 1000, MaxWorkspaces: 40,
		GPUType: "NVIDIA RTX 4000 SFF Ada", GPUCount: 2,
		WorkspaceImage: "podex/workspace:latest", WorkspaceImageARM64: "podex/workspace:arm64",
		WorkspaceImageAMD64: "podex/workspace:amd64", WorkspaceImageGPU: "podex/workspace:gpu",
		State: fleet.StateActive,
	}
}

// ignoreServerState leaves out what the registry sets itself.
var ignoreServerState = cmpopts.IgnoreFields(Server{}, "Health", "CreatedAt", "UpdatedAt")

func TestCreateServer(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		in      Server
		want    Server
		wantErr error
	}{
		{
			name: "all fields",
			in:   fullServer("a"),
			want: fullServer("a"),
		},
		{
			name: "defaults: name is the id, state active",
			in:   Server{ID: "b"},
			want: Server{ID: "b", Name: "b", State: fleet.StateActive},
		},
		{
			name:    "duplicate id",
			in:      Server{ID: "taken", Name: "other"},
			wantErr: ErrConflict,
		},
		{
			name:    "duplicate name",
			in:      Server{ID: "other", Name: "taken-name"},
			wantErr: ErrConflict,
		},
		{name: "empty id", in: Server{}, wantErr: ErrInvalid},
		{name: "bad state", in: Server{ID: "c", State: "paused"}, wantErr: ErrInvalid},
		{name: "negative capacity", in: Server{ID: "d", TotalCPU: -1}, wantErr: ErrInvalid},
		{name: "bad port", in: Server{ID: "e", AgentPort: 70000}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			mustCreateServer(t, db, Server{ID: "taken", Name: "taken-name"})
			got, err := db.CreateServer(ctx, tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateServer: got error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, ignoreServerState, cmpOpts[0]); diff != "" {
				t.Errorf("CreateServer (-want +got):\n%s", diff)
			}
			if got.Health != fleet.HealthUnknown {
				t.Errorf("Health: got %q, want %q", got.Health, fleet.HealthUnknown)
			}
			if got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
				t.Errorf("CreatedAt %v, UpdatedAt %v: want both set and equal", got.CreatedAt, got.UpdatedAt)
			}
			stored, err := db.GetServer(ctx, tt.in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, stored, cmpOpts...); diff != "" {
				t.Errorf("GetServer differs from CreateServer (-create +get):\n%s", diff)
			}
		})
	}
}

func TestGetServerNotFound(t *testing.T) {
	db, _ := openTestDB(t)
	_, err := db.GetServer(context.Background(), "nope")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("GetServer: got %v, want ErrNotFound", err)
	}
}

func TestListServersInRegistrationOrder(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	// Ids in non-alphabetical order; upserts and a delete mixed in.
	for _, id := range []string{"zeta", "alpha", "mid"} {
		mustCreateServer(t, db, Server{ID: id})
	}
	if _, err := db.UpsertServer(ctx, Server{ID: "beta"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpsertServer(ctx, Server{ID: "zeta", Region: "us"}); err != nil { // existing: keeps its place
		t.Fatal(err)
	}
	if err := db.DeleteServer(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	mustCreateServer(t, db, Server{ID: "alpha"}) // re-registered: goes last

	got, err := db.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	want := []string{"zeta", "mid", "beta", "alpha"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("ListServers order (-want +got):\n%s", diff)
	}
}

func TestUpsertServer(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()

	created, err := db.UpsertServer(ctx, fullServer("s1"))
	if err != nil {
		t.Fatalf("UpsertServer (insert): %v", err)
	}
	if diff := cmp.Diff(fullServer("s1"), created, ignoreServerState); diff != "" {
		t.Errorf("inserted (-want +got):\n%s", diff)
	}

	// State, health, usage and the epoch come from elsewhere; an upsert must keep them.
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "s1"}, Limits{})
	checked := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	if _, err := db.SetServerHealth(ctx, "s1", fleet.HealthDegraded, "slow ping", checked); err != nil {
		t.Fatal(err)
	}
	draining := fleet.StateDraining
	if _, err := db.UpdateServer(ctx, "s1", ServerPatch{State: &draining}); err != nil {
		t.Fatal(err)
	}
	usage := ReportedUsage{CPU: 3.5, MemoryMB: 2048, DiskGB: 40, ActiveWorkspaces: 2, ReportedAt: checked}
	if err := db.SetServerUsage(ctx, "s1", usage); err != nil {
		t.Fatal(err)
	}
	before, err := db.GetServer(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}

	// The new configuration replaces the old one (State in the input is ignored).
	next := Server{ID: "s1", Name: "renamed", Hostname: "new.example.net", AgentPort: 9444, Region: "us",
		Labels: map[string]string{"rack": "r2"}, TotalCPU: 8, State: fleet.StateActive}
	got, err := db.UpsertServer(ctx, next)
	if err != nil {
		t.Fatalf("UpsertServer (update): %v", err)
	}
	want := next
	want.State = fleet.StateDraining
	want.Health = fleet.HealthDegraded
	want.LastHealthCheck = checked
	want.LastError = "slow ping"
	want.Usage = usage
	want.PlacementEpoch = 1
	want.CreatedAt = before.CreatedAt
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Server{}, "UpdatedAt")); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	if got.UpdatedAt.Before(before.UpdatedAt) {
		t.Errorf("UpdatedAt: got %v, want at or after %v", got.UpdatedAt, before.UpdatedAt)
	}

	t.Run("name taken by another server", func(t *testing.T) {
		mustCreateServer(t, db, Server{ID: "s2", Name: "two"})
		_, err := db.UpsertServer(ctx, Server{ID: "s1", Name: "two"})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("UpsertServer: got %v, want ErrConflict", err)
		}
		_, err = db.UpsertServer(ctx, Server{ID: "s3", Name: "two"})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("UpsertServer (new id): got %v, want ErrConflict", err)
		}
	})
}

func TestUpdateServer(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		patch   ServerPatch
		want    func(*Server)
		wantErr error
	}{
		{name: "empty patch changes nothing", want: func(*Server) {}},
		{
			name:  "labels replaced",
			patch: ServerPatch{Labels: &map[string]string{"new": "x"}},
			want:  func(s *Server) { s.Labels = map[string]string{"new": "x"} },
		},
		{
			name:  "labels cleared",
			patch: ServerPatch{Labels: &map[string]string{}},
			want:  func(s *Server) { s.Labels = map[string]string{} },
		},
		{
			name: "capacity overrides",
			patch: ServerPatch{TotalCPU: ptr(3.5), TotalMemoryMB: ptr(int64(1024)), TotalDiskGB: ptr(int64(0)),
				TotalBandwidthMbps: ptr(int64(100)), MaxWorkspaces: ptr(7)},
			want: func(s *Server) {
				s.TotalCPU, s.TotalMemoryMB, s.TotalDiskGB, s.TotalBandwidthMbps, s.MaxWorkspaces = 3.5, 1024, 0, 100, 7
			},
		},
		{
			name:  "state",
			patch: ServerPatch{State: ptr(fleet.StateCordoned)},
			want:  func(s *Server) { s.State = fleet.StateCordoned },
		},
		{name: "bad state", patch: ServerPatch{State: ptr(fleet.State("gone"))}, wantErr: ErrInvalid},
		{name: "negative capacity", patch: ServerPatch{MaxWorkspaces: ptr(-1)}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			orig := mustCreateServer(t, db, fullServer("s"))
			got, err := db.UpdateServer(ctx, "s", tt.patch)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UpdateServer: got error %v, want %v", err, tt.wantErr)
			}
			stored, gerr := db.GetServer(ctx, "s")
			if gerr != nil {
				t.Fatal(gerr)
			}
			want := orig
			if err == nil {
				tt.want(&want)
				if diff := cmp.Diff(stored, got); diff != "" {
					t.Errorf("returned vs stored (-stored +returned):\n%s", diff)
				}
			}
			if diff := cmp.Diff(want, stored, cmpopts.IgnoreFields(Server{}, "UpdatedAt")); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unknown server", func(t *testing.T) {
		db, _ := openTestDB(t)
		_, err := db.UpdateServer(ctx, "nope", ServerPatch{})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateServer: got %v, want ErrNotFound", err)
		}
	})
}

func TestDeleteServer(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "busy"})
	mustCreateServer(t, db, Server{ID: "idle"})
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "busy"}, Limits{})

	tests := []struct {
		id      string
		wantErr error
	}{
		{"busy", ErrServerInUse},
		{"idle", nil},
		{"idle", ErrNotFound},
		{"never", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if err := db.DeleteServer(ctx, tt.id); !errors.Is(err, tt.wantErr) {
				t.Errorf("DeleteServer(%s): got %v, want %v", tt.id, err, tt.wantErr)
			}
		})
	}
	// Once its workspace is gone the server can go.
	if err := db.DeleteWorkspace(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteServer(ctx, "busy"); err != nil {
		t.Errorf("DeleteServer after its workspace went: %v", err)
	}
	// The foreign key backs the check up.
	if _, err := db.write.Exec(`INSERT INTO workspaces (id, user_id, status, server_id, created_at, last_activity,
		updated_at) VALUES ('x', 'u', 'running', 'ghost', '', '', '')`); !isForeignKeyViolation(err) {
		t.Errorf("insert naming an unknown server: got %v, want a foreign key violation", err)
	}
}

func TestSetServerHealth(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s"})
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

	steps := []struct {
		name        string
		health      fleet.Health
		lastError   string
		wantChanged bool
		wantErr     error
	}{
		{"unknown to healthy", fleet.HealthHealthy, "", true, nil},
		{"healthy again", fleet.HealthHealthy, "", false, nil},
		{"degraded with error", fleet.HealthDegraded, "ping failed", true, nil},
		{"still degraded, new error", fleet.HealthDegraded, "ping failed twice", false, nil},
		{"unreachable", fleet.HealthUnreachable, "timeout", true, nil},
		{"invalid value", fleet.Health("sick"), "", false, ErrInvalid},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			at := t0.Add(time.Duration(i) * time.Second)
			changed, err := db.SetServerHealth(ctx, "s", st.health, st.lastError, at)
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("SetServerHealth: got error %v, want %v", err, st.wantErr)
			}
			if changed != st.wantChanged {
				t.Errorf("changed: got %v, want %v", changed, st.wantChanged)
			}
			if err != nil {
				return
			}
			s, err := db.GetServer(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			if s.Health != st.health || s.LastError != st.lastError || !s.LastHealthCheck.Equal(at) {
				t.Errorf("stored: got %s %q %v, want %s %q %v",
					s.Health, s.LastError, s.LastHealthCheck, st.health, st.lastError, at)
			}
		})
	}

	events, err := db.ListEvents(ctx, EventFilter{ServerID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Kind == EventServerHealth {
			got = append(got, e.Data["from"].(string)+">"+e.Data["to"].(string))
		}
	}
	want := []string{"degraded>unreachable", "healthy>degraded", "unknown>healthy"} // newest first
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("health events (-want +got):\n%s", diff)
	}

	if _, err := db.SetServerHealth(ctx, "nope", fleet.HealthHealthy, "", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetServerHealth on unknown server: got %v, want ErrNotFound", err)
	}
}

func TestSetServerUsage(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s"})
	want := ReportedUsage{CPU: 1.25, MemoryMB: 3000, DiskGB: 12, ActiveWorkspaces: 3,
		ReportedAt: time.Date(2026, 5, 1, 10, 0, 0, 999000, time.UTC)}
	if err := db.SetServerUsage(ctx, "s", want); err != nil {
		t.Fatal(err)
	}
	s, err := db.GetServer(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, s.Usage); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	if err := db.SetServerUsage(ctx, "nope", want); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetServerUsage on unknown server: got %v, want ErrNotFound", err)
	}
}

func ptr[T any](v T) *T { return &v }
