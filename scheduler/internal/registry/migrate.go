package registry

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/sqlite3"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/hashicorp/go-hclog"
)

// migrations holds the numbered schema files: NNNNNN_name.up.sql and
// NNNNNN_name.down.sql. Never edit a released file; add the next number.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrateUp applies the pending migrations to the file at path and returns
// the schema version.
func migrateUp(ctx context.Context, path string, logger hclog.Logger) (uint, error) {
	v, err := runMigrations(ctx, path, logger, (*migrate.Migrate).Up)
	if err != nil {
		return 0, fmt.Errorf("migrate up: %w", err)
	}
	return v, nil
}

// runMigrations runs step (Up, or Migrate to a version in tests) on the file
// at path and returns the schema version it leaves. It uses its own
// connection (golang-migrate closes the connection it is given), opened like
// the write pool. migrate.ErrNoChange from step is success.
func runMigrations(ctx context.Context, path string, logger hclog.Logger, step func(*migrate.Migrate) error) (uint, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	conn, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		return 0, err
	}
	conn.SetMaxOpenConns(1)

	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		_ = conn.Close()
		return 0, fmt.Errorf("source: %w", err)
	}
	drv, err := sqlite3.WithInstance(conn, &sqlite3.Config{})
	if err != nil {
		_ = src.Close()
		_ = conn.Close()
		return 0, fmt.Errorf("database: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "sqlite3", drv)
	if err != nil {
		_ = src.Close()
		_ = drv.Close()
		return 0, err
	}
	m.Log = migrateLogger{logger.Named("migrate")}

	// Stop between migrations when ctx ends; each migration is a transaction.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-done:
		}
	}()

	stepErr := step(m)
	if errors.Is(stepErr, migrate.ErrNoChange) {
		stepErr = nil
	}
	version, dirty, verErr := m.Version()
	if errors.Is(verErr, migrate.ErrNilVersion) {
		version, verErr = 0, nil // migrated all the way down
	}
	srcErr, dbErr := m.Close()
	if stepErr != nil {
		return 0, stepErr
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if verErr != nil {
		return 0, fmt.Errorf("version: %w", verErr)
	}
	if dirty {
		return 0, fmt.Errorf("schema version %d is dirty", version)
	}
	if err := errors.Join(srcErr, dbErr); err != nil {
		return 0, fmt.Errorf("close: %w", err)
	}
	return version, nil
}

// migrateLogger bridges golang-migrate's logger to hclog.
type migrateLogger struct{ l hclog.Logger }

func (m migrateLogger) Printf(format string, v ...any) {
	m.l.Info(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (m migrateLogger) Verbose() bool { return false }
