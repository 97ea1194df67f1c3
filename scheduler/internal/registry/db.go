package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// busyTimeout is how long a connection waits for another process's lock
// before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// DB is the registry database. It holds two connection pools on one file: a
// single write connection (transactions begin IMMEDIATE, so writes are
// serialised) and a read-only pool. Safe for concurrent use.
type DB struct {
	write       *sql.DB
	read        *sql.DB
	path        string
	logger      hclog.Logger
	sealer      Sealer    // credentials at rest (SealCredentials); nil: stored as given
	commit      committer // group commit of writeTx
	book        usageBook // reservations per server, in memory
	replication           // set when the registry is replicated (replicate.go)
}

// Open opens (creating if needed) the SQLite database at path, applies the
// pending migrations and returns the registry. The file is put in WAL mode
// with synchronous=FULL and foreign keys on. path must name a file: an
// in-memory database cannot be shared by the two pools.
func Open(ctx context.Context, path string, logger hclog.Logger) (*DB, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("registry")
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open registry %q: need a plain file path: %w", path, ErrInvalid)
	}

	// Create the file owner-only: it holds workspace environments (tokens).
	// SQLite gives the -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("open registry %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}

	write, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	// One writer: database/sql hands the single connection to one transaction
	// at a time; BEGIN IMMEDIATE also excludes writers in other processes.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	db := &DB{write: write, path: path, logger: logger}
	if err := db.checkWriter(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	version, err := migrateUp(ctx, path, logger)
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}

	read, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	if err := read.PingContext(ctx); err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, fmt.Errorf("open registry %s: read pool: %w", path, err)
	}
	db.read = read
	db.schemaVersion = version
	if err := db.loadDiverged(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	if err := db.loadUsage(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}

	logger.Info("database open", "path", path, "schema_version", version)
	return db, nil
}

// dsn builds the go-sqlite3 data source name. The writer's pragmas are set on
// every new connection by the driver; the readers open the file read-only.
func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_stmt_cache_size", "64")
	// Page caches (KiB): the default 2 MiB is a fraction of the indexes
	// of 100,000 workspaces, and every statement then reads pages back.
	if writer {
		q.Set("_cache_size", "-32768")
	} else {
		q.Set("_cache_size", "-8192")
	}
	if writer {
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		q.Set("_txlock", "immediate")
	} else {
		q.Set("mode", "ro")
	}
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// checkWriter opens the write connection and verifies that the pragmas took:
// some file systems cannot do WAL, and silently running in another journal
// mode would change the durability and concurrency guarantees.
func (db *DB) checkWriter(ctx context.Context) error {
	var mode string
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	var syncMode, fk int
	if err := db.write.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
		return err
	}
	if syncMode != 2 { // FULL
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", syncMode)
	}
	if err := db.write.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if fk != 1 {
		return errors.New("foreign keys are off")
	}
	return nil
}

// Close runs PRAGMA optimize and closes both pools. The registry must not be
// used afterwards.
func (db *DB) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := db.write.ExecContext(ctx, "PRAGMA optimize"); err != nil {
		db.logger.Warn("optimize before close failed", "error", err)
	}
	return errors.Join(db.read.Close(), db.write.Close())
}

// Backup writes a consistent copy of the database to destPath with VACUUM
// INTO and syncs it to disk. It runs on the read pool, so writers are not
// blocked. It refuses to overwrite: an existing destPath gives ErrExists.
// The copy is written to a temporary file beside destPath (mode 0600: the
// database holds workspace secrets) and linked into place only when it is
// complete, so destPath never holds a partial backup.
func (db *DB) Backup(ctx context.Context, destPath string) error {
	if destPath == "" {
		return fmt.Errorf("backup: empty destination: %w", ErrInvalid)
	}
	if _, err := os.Lstat(destPath); err == nil {
		return fmt.Errorf("backup to %s: %w", destPath, ErrExists)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup to %s: %w", destPath, err)
	}
	dir := filepath.Dir(destPath)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(destPath)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup to %s: %w", destPath, err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath)
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup to %s: %w", destPath, err)
	}
	// VACUUM INTO accepts an existing empty file.
	if _, err := db.read.ExecContext(ctx, "VACUUM INTO ?", tmpPath); err != nil {
		return fmt.Errorf("backup to %s: %w", destPath, err)
	}
	if err := syncFile(tmpPath); err != nil {
		return fmt.Errorf("backup to %s: sync: %w", destPath, err)
	}
	// Link, unlike rename, fails if destPath appeared in the meantime.
	if err := os.Link(tmpPath, destPath); errors.Is(err, os.ErrExist) {
		return fmt.Errorf("backup to %s: %w", destPath, ErrExists)
	} else if err != nil {
		return fmt.Errorf("backup to %s: %w", destPath, err)
	}
	if err := syncFile(dir); err != nil {
		return fmt.Errorf("backup to %s: sync directory: %w", destPath, err)
	}
	db.logger.Info("backup written", "path", destPath)
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// IntegrityCheck runs PRAGMA integrity_check and returns its result: "ok" for
// a sound database, otherwise the problems found, one per line.
func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	rows, err := db.read.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", fmt.Errorf("integrity check: %w", err)
		}
		lines = append(lines, line)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return strings.Join(lines, "\n"), nil
}

// queryer is what *sql.DB and *sql.Tx have in common; the row helpers take it
// so they work inside a write transaction and on the read pool alike.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
