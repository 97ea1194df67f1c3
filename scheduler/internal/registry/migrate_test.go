package registry

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

// latestVersion is the number of the last migration file.
func latestVersion(t *testing.T) uint {
	t.Helper()
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var latest uint
	for _, e := range entries {
		n, err := strconv.ParseUint(strings.SplitN(e.Name(), "_", 2)[0], 10, 32)
		if err != nil {
			t.Fatalf("migration file %s: %v", e.Name(), err)
		}
		latest = max(latest, uint(n))
	}
	return latest
}

// migrateTo migrates the file at path, up or down, to version (0 = no
// schema), as Open would but stopping there.
func migrateTo(t *testing.T, path string, version uint) {
	t.Helper()
	step := func(m *migrate.Migrate) error { return m.Migrate(version) }
	if version == 0 {
		step = (*migrate.Migrate).Down
	}
	got, err := runMigrations(context.Background(), path, hclog.NewNullLogger(), step)
	if err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
	if got != version {
		t.Fatalf("migrate to %d: got version %d", version, got)
	}
}

// rawConn opens path without the registry (and without migrating), like the
// write pool; closed at the end of the test.
func rawConn(t *testing.T, path string) *sql.DB {
	t.Helper()
	conn, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetMaxOpenConns(1)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// schemaOf describes the schema of the file at path: every table with its
// columns (in name order: ALTER TABLE appends, so the order can differ after
// a down and up), foreign keys and indexes. schema_migrations is left out.
func schemaOf(t *testing.T, path string) map[string][]string {
	t.Helper()
	conn := rawConn(t, path)
	defer conn.Close()
	queries := []string{
		`SELECT m.name, 'column ' || c.name || ' ' || c.type || ' notnull=' || c."notnull" ||
			' default=' || COALESCE(c.dflt_value, 'NULL') || ' pk=' || c.pk
		FROM sqlite_schema m, pragma_table_xinfo(m.name) c WHERE m.type = 'table'`,
		`SELECT m.name, 'fk ' || f."from" || ' -> ' || f."table" || '(' || f."to" || ') on delete ' || f.on_delete
		FROM sqlite_schema m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`,
		`SELECT tbl_name, 'index ' || name || ': ' || COALESCE(sql, 'auto') FROM sqlite_schema WHERE type = 'index'`,
	}
	out := map[string][]string{}
	for _, q := range queries {
		func() {
			rows, err := conn.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var table, desc string
				if err := rows.Scan(&table, &desc); err != nil {
					t.Fatal(err)
				}
				if table != "schema_migrations" && !strings.HasPrefix(table, "sqlite_") {
					out[table] = append(out[table], desc)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}()
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

func TestMigrations(t *testing.T) {
	localOnly(t)
	latest := latestVersion(t)
	db, path := openTestDB(t)
	if v, dirty := schemaVersion(t, db); v != int(latest) || dirty {
		t.Fatalf("fresh file: got version %d dirty %v, want %d clean", v, dirty, latest)
	}
	for _, table := range []string{"servers", "workspaces", "workspace_credentials", "events"} {
		var n int
		err := db.read.QueryRow("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("table %s: got count %d (err %v), want 1", table, n, err)
		}
	}
	// Reopening runs the migrations again: nothing changes, nothing fails.
	for i := range 2 {
		db2 := reopen(t, path)
		if v, dirty := schemaVersion(t, db2); v != int(latest) || dirty {
			t.Errorf("reopen %d: got version %d dirty %v, want %d clean", i, v, dirty, latest)
		}
		if err := db2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrationsDownUndoesUp checks every down file against its up file:
// migrating a fresh file up to the latest version and down to v gives the
// schema a fresh file has at v, and going up again gives the latest schema.
func TestMigrationsDownUndoesUp(t *testing.T) {
	latest := latestVersion(t)
	fresh := func(v uint) map[string][]string {
		path := filepath.Join(t.TempDir(), "fresh.db")
		migrateTo(t, path, v)
		return schemaOf(t, path)
	}
	want := fresh(latest)
	for v := uint(0); v < latest; v++ {
		t.Run(fmt.Sprintf("down to %d", v), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			migrateTo(t, path, latest)
			migrateTo(t, path, v)
			if diff := cmp.Diff(fresh(v), schemaOf(t, path)); diff != "" {
				t.Errorf("schema after down (-fresh +down):\n%s", diff)
			}
			migrateTo(t, path, latest)
			if diff := cmp.Diff(want, schemaOf(t, path)); diff != "" {
				t.Errorf("schema after down and up (-fresh +again):\n%s", diff)
			}
		})
	}
}

// TestMigrationWorkspaceSettings runs migration 2 on rows of the old shape:
// the create request's config (git credentials inside) in workspaces.config
// and the acknowledgement time in metadata.acknowledged_at.
func TestMigrationWorkspaceSettings(t *testing.T) {
	ctx := context.Background()
	const created = "2026-01-02T03:04:05.000006Z"
	createdAt, _ := time.Parse(timeLayout, created)
	rfc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return normTime(v)
	}
	tests := []struct {
		id, config, metadata string
		wantSettings         Settings
		wantCreds            Credentials
		wantAck              time.Time
		wantMetadata         map[string]any
	}{
		{
			id: "full",
			config: `{"tier":"pro","repos":["r"],"git_branch":"dev","git_name":"Ada","git_email":"a@x",
				"git_credentials":"u:s3cret","base_image":"img:1","region_preference":"eu",
				"environment":{"A":"b"},"storage_gb":20}`,
			metadata:     `{"acknowledged_at":"2026-02-03T04:05:06.123456789Z","billing":"x"}`,
			wantSettings: Settings{GitBranch: "dev", GitName: "Ada", GitEmail: "a@x", BaseImage: "img:1", RegionPreference: "eu"},
			wantCreds:    Credentials{Git: "u:s3cret"},
			wantAck:      rfc("2026-02-03T04:05:06.123456Z"),
			wantMetadata: map[string]any{"billing": "x"},
		},
		{id: "positive offset", config: `{}`, metadata: `{"acknowledged_at":"2026-02-03T01:05:06.5+05:30"}`,
			wantAck: rfc("2026-02-02T19:35:06.5Z")},
		{id: "negative offset across a year", config: `{"git_branch":"x"}`,
			metadata:     `{"acknowledged_at":"2026-12-31T20:00:00-08:00"}`,
			wantSettings: Settings{GitBranch: "x"}, wantAck: rfc("2027-01-01T04:00:00Z")},
		{id: "fraction is cut, never rounded up", config: `{}`,
			metadata: `{"acknowledged_at":"2026-02-03T04:05:59.9999999Z"}`, wantAck: rfc("2026-02-03T04:05:59.999999Z")},
		{id: "short fraction", config: `{}`, metadata: `{"acknowledged_at":"2026-02-03T04:05:06.12Z"}`,
			wantAck: rfc("2026-02-03T04:05:06.12Z")},
		{id: "unreadable time still means acknowledged", config: `{}`,
			metadata: `{"acknowledged_at":"yesterday","k":1}`, wantAck: createdAt, wantMetadata: map[string]any{"k": float64(1)}},
		{id: "true means acknowledged", config: `{}`, metadata: `{"acknowledged_at":true}`, wantAck: createdAt},
		{id: "null is not acknowledged", config: `{}`, metadata: `{"acknowledged_at":null}`},
		{id: "never acknowledged", config: `{"git_credentials":"tok"}`, metadata: `{"k":"v"}`,
			wantCreds: Credentials{Git: "tok"}, wantMetadata: map[string]any{"k": "v"}},
		{id: "odd config values are dropped", metadata: `{}`,
			config: `{"git_branch":2,"git_name":null,"git_email":"","base_image":["x"],"git_credentials":""}`},
		{id: "config not an object", config: `[1,2]`, metadata: `{}`},
	}

	path := filepath.Join(t.TempDir(), "registry.db")
	migrateTo(t, path, 1)
	conn := rawConn(t, path)
	if _, err := conn.Exec(`INSERT INTO servers (id, seq, name, created_at, updated_at)
		VALUES ('s', 1, 's', ?, ?)`, created, created); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		_, err := conn.Exec(`INSERT INTO workspaces (id, user_id, status, server_id, created_at, last_activity,
			metadata, config, updated_at) VALUES (?, 'u', 'running', 's', ?, ?, ?, ?, ?)`,
			tt.id, created, created, tt.metadata, tt.config, created)
		if err != nil {
			t.Fatalf("insert %s: %v", tt.id, err)
		}
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path, nil) // migrates up
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			w, err := db.GetWorkspace(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantSettings, w.Settings); diff != "" {
				t.Errorf("Settings (-want +got):\n%s", diff)
			}
			if !w.AcknowledgedAt.Equal(tt.wantAck) {
				t.Errorf("AcknowledgedAt: got %v, want %v", w.AcknowledgedAt, tt.wantAck)
			}
			if diff := cmp.Diff(tt.wantMetadata, w.Metadata, cmpOpts...); diff != "" {
				t.Errorf("Metadata (-want +got):\n%s", diff)
			}
			creds, err := db.GetCredentials(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if creds != tt.wantCreds {
				t.Errorf("GetCredentials: got %+v, want %+v", creds, tt.wantCreds)
			}
		})
	}
	t.Run("credentials are nowhere in the workspaces table", func(t *testing.T) {
		for _, secret := range []string{"s3cret", "tok", "git_credentials"} {
			if cols := columnsContaining(t, db.read, "workspaces", secret); len(cols) > 0 {
				t.Errorf("%q still in workspaces columns %v", secret, cols)
			}
		}
	})
	t.Run("migrated rows can be updated", func(t *testing.T) {
		if _, err := db.UpdateWorkspace(ctx, "full", func(w *Workspace) error { w.Tier = "pro"; return nil }); err != nil {
			t.Errorf("UpdateWorkspace: %v", err)
		}
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("down puts them back", func(t *testing.T) {
		migrateTo(t, path, 1)
		var config, metadata string
		err := rawConn(t, path).QueryRow("SELECT config, metadata FROM workspaces WHERE id = 'full'").Scan(&config, &metadata)
		if err != nil {
			t.Fatal(err)
		}
		gotConfig, err := decodeAnyMap(config)
		if err != nil {
			t.Fatal(err)
		}
		wantConfig := map[string]any{"git_branch": "dev", "git_name": "Ada", "git_email": "a@x",
			"git_credentials": "u:s3cret", "base_image": "img:1", "region_preference": "eu"}
		if diff := cmp.Diff(wantConfig, gotConfig); diff != "" {
			t.Errorf("config (-want +got):\n%s", diff)
		}
		gotMeta, err := decodeAnyMap(metadata)
		if err != nil {
			t.Fatal(err)
		}
		wantMeta := map[string]any{"billing": "x", "acknowledged_at": "2026-02-03T04:05:06.123456Z"}
		if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
			t.Errorf("metadata (-want +got):\n%s", diff)
		}
	})
}

// columnsContaining returns the columns of table in which some row's value
// contains s.
func columnsContaining(t *testing.T, q queryer, table, s string) []string {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if strings.Contains(string(v), s) {
				found[cols[i]] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for c := range found {
		out = append(out, c)
	}
	return out
}
