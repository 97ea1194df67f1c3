package registry

import (
	"berth/scheduler/internal/fleet"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/go-hclog"
)

// openTestDB opens a registry on a fresh file in t.TempDir and closes it at
// the end of the test. It returns the file path for reopen tests.
func openTestDB(t testing.TB) (*DB, string) {
	t.Helper()
	if os.Getenv("BERTH_REGISTRY_RAFT") != "" {
		// The same test on the leader of three replicated registries, whose
		// files must agree at its end.
		c := newRaftCluster(t, 3)
		t.Cleanup(c.converge)
		l := c.leader()
		return l.db, l.path
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	db, err := Open(context.Background(), path, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db, path
}

// localOnly marks a test of one file as such: it writes past the registry
// (states only old or damaged files have), reopens the file or opens it
// twice. Run on replicated registries (BERTH_REGISTRY_RAFT) it is skipped.
func localOnly(t testing.TB) {
	t.Helper()
	if os.Getenv("BERTH_REGISTRY_RAFT") != "" {
		t.Skip("a test of one local file")
	}
}

// reopen opens path again; the caller closes it.
func reopen(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	return db
}

func mustCreateServer(t testing.TB, db *DB, s Server) Server {
	t.Helper()
	out, err := db.CreateServer(context.Background(), s)
	if err != nil {
		t.Fatalf("CreateServer(%s): %v", s.ID, err)
	}
	return out
}

func mustReserve(t testing.TB, db *DB, ws Workspace, l Limits) Workspace {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ReserveAndInsert(ctx, ws, Credentials{}, l); err != nil {
		t.Fatalf("ReserveAndInsert(%s): %v", ws.ID, err)
	}
	got, err := db.GetWorkspace(ctx, ws.ID)
	if err != nil {
		t.Fatalf("GetWorkspace(%s): %v", ws.ID, err)
	}
	return got
}

// cmpOpts compares rows read back from the database: nil and empty slices and
// maps are alike (the registry returns empty ones).
var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

func schemaVersion(t *testing.T, db *DB) (int, bool) {
	t.Helper()
	var version int
	var dirty bool
	err := db.read.QueryRow("SELECT version, dirty FROM schema_migrations").Scan(&version, &dirty)
	if err != nil {
		t.Fatalf("schema version: %v", err)
	}
	return version, dirty
}

func TestOpenPragmas(t *testing.T) {
	localOnly(t)
	db, _ := openTestDB(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			var got string
			if err := db.write.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s: got %q, want %q", tt.pragma, got, tt.want)
			}
		})
	}
	t.Run("read pool is read-only", func(t *testing.T) {
		_, err := db.read.Exec("DELETE FROM events")
		if err == nil {
			t.Errorf("write on the read pool: got nil error, want one")
		}
	})
	t.Run("write transactions are immediate", func(t *testing.T) {
		// BEGIN IMMEDIATE takes the write lock at once: while a write
		// transaction is open, even before it writes, another connection
		// cannot start one.
		ctx := context.Background()
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		other, err := sql.Open("sqlite3", "file:"+db.path+"?_busy_timeout=0")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		_, err = other.ExecContext(ctx, "INSERT INTO events (at, kind) VALUES ('x', 'test')")
		if err == nil {
			t.Errorf("write from another connection during a write transaction: got success, want SQLITE_BUSY")
		}
	})
}

func TestOpenRejectsBadPaths(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db?mode=memory"} {
		t.Run(path, func(t *testing.T) {
			_, err := Open(context.Background(), path, nil)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Open(%q): got %v, want ErrInvalid", path, err)
			}
		})
	}
}

// fillRegistry writes a bit of everything and returns the servers and
// workspaces as stored.
func fillRegistry(t *testing.T, db *DB) ([]Server, []Workspace) {
	t.Helper()
	ctx := context.Background()
	s1 := mustCreateServer(t, db, Server{ID: "ws-1", Hostname: "ws-1.local", Labels: map[string]string{"zone": "a"}})
	s2 := mustCreateServer(t, db, Server{ID: "ws-2", Hostname: "ws-2.local", GPUType: "L4", GPUCount: 1})
	mustReserve(t, db, Workspace{ID: "w1", UserID: "u1", SessionID: "s1", ServerID: "ws-1",
		Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096}, Environment: map[string]string{"A": "b"}}, Limits{})
	w2 := mustReserve(t, db, Workspace{ID: "w2", UserID: "u2", SessionID: "s2", ServerID: "ws-2",
		Reservation: fleet.Resources{CPU: 1, GPUCount: 1}, Repositories: []string{"https://x/y.git"}}, Limits{})
	if _, err := db.SetWorkspaceStatus(ctx, "w1", fleet.StatusRunning, ""); err != nil {
		t.Fatal(err)
	}
	w1, _ := db.GetWorkspace(ctx, "w1")
	s1, _ = db.GetServer(ctx, s1.ID)
	s2, _ = db.GetServer(ctx, s2.ID)
	return []Server{s1, s2}, []Workspace{w1, w2}
}

// assertContents checks that db holds exactly the given servers and workspaces.
func assertContents(t *testing.T, db *DB, servers []Server, workspaces []Workspace) {
	t.Helper()
	ctx := context.Background()
	gotS, err := db.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(servers, gotS, cmpOpts...); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	gotW, err := db.ListWorkspaces(ctx, WorkspaceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(workspaces, gotW, cmpOpts...); diff != "" {
		t.Errorf("workspaces (-want +got):\n%s", diff)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	db, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	servers, workspaces := fillRegistry(t, db)
	events, err := db.ListEvents(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2 := reopen(t, path)
	defer db2.Close()
	assertContents(t, db2, servers, workspaces)
	got, err := db2.ListEvents(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(events, got, cmpOpts...); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestBackup(t *testing.T) {
	db, _ := openTestDB(t)
	servers, workspaces := fillRegistry(t, db)
	dest := filepath.Join(t.TempDir(), "backup.db")
	ctx := context.Background()

	if err := db.Backup(ctx, dest); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	// Writes after the backup are not in it.
	mustCreateServer(t, db, Server{ID: "ws-late"})

	t.Run("refuses an existing destination", func(t *testing.T) {
		err := db.Backup(ctx, dest)
		if !errors.Is(err, ErrExists) {
			t.Errorf("second Backup: got %v, want ErrExists", err)
		}
		empty := filepath.Join(t.TempDir(), "empty.db")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := db.Backup(ctx, empty); !errors.Is(err, ErrExists) {
			t.Errorf("Backup onto an empty file: got %v, want ErrExists", err)
		}
	})

	t.Run("opens with the same rows", func(t *testing.T) {
		b, err := Open(ctx, dest, nil)
		if err != nil {
			t.Fatalf("Open backup: %v", err)
		}
		defer b.Close()
		assertContents(t, b, servers, workspaces)
		if got, err := b.IntegrityCheck(ctx); err != nil || got != "ok" {
			t.Errorf("IntegrityCheck of backup: got %q (err %v), want ok", got, err)
		}
	})
}

func TestIntegrityCheck(t *testing.T) {
	db, _ := openTestDB(t)
	fillRegistry(t, db)
	got, err := db.IntegrityCheck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != "ok" {
		t.Errorf("IntegrityCheck: got %q, want %q", got, "ok")
	}
}

func TestTimesRoundTripExactly(t *testing.T) {
	db, _ := openTestDB(t)
	mustCreateServer(t, db, Server{ID: "s"})
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	tests := []struct {
		name string
		in   time.Time
	}{
		{"nanoseconds are truncated", time.Date(2026, 3, 1, 12, 30, 45, 123456789, loc)},
		{"whole second", time.Date(2026, 3, 1, 12, 30, 45, 0, time.UTC)},
		{"one microsecond", time.Date(1999, 12, 31, 23, 59, 59, 1000, time.UTC)},
		{"local time with monotonic reading", time.Now()},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := string(rune('a' + i))
			got := mustReserve(t, db, Workspace{ID: id, UserID: "u", ServerID: "s", CreatedAt: tt.in,
				LastActivity: tt.in.Add(time.Hour)}, Limits{})
			want := time.Unix(0, tt.in.UnixNano()).UTC().Truncate(time.Microsecond)
			if got.CreatedAt != want || got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt: got %v, want %v (UTC)", got.CreatedAt, want)
			}
			if !got.LastActivity.Equal(want.Add(time.Hour)) {
				t.Errorf("LastActivity: got %v, want %v", got.LastActivity, want.Add(time.Hour))
			}
			// A second round trip changes nothing.
			again, err := db.UpdateWorkspace(context.Background(), id, func(*Workspace) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if again.CreatedAt != got.CreatedAt || again.LastActivity != got.LastActivity {
				t.Errorf("second round trip: got %v/%v, want %v/%v",
					again.CreatedAt, again.LastActivity, got.CreatedAt, got.LastActivity)
			}
		})
	}
}

func TestFilesAreOwnerOnly(t *testing.T) {
	db, path := openTestDB(t)
	fillRegistry(t, db)
	dest := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(context.Background(), dest); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", dest} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %v, want 0600", filepath.Base(p), got)
		}
	}
	// No temporary file is left beside the backup.
	entries, err := os.ReadDir(filepath.Dir(dest))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("backup directory: got %d entries, want only the backup", len(entries))
	}
}
