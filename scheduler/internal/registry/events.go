package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Event kinds written by the registry itself. Other packages add their own
// kinds with AddEvent (for example EventPlacementFailed from the orchestrator).
const (
	EventServerRegistered = "server.registered" // CreateServer, or UpsertServer of a new id
	EventServerState      = "server.state"      // state changed by UpdateServer
	EventServerDeleted    = "server.deleted"
	EventServerHealth     = "server.health"     // health changed (SetServerHealth)
	EventWorkspacePlaced  = "workspace.placed"  // ReserveAndInsert
	EventWorkspaceMoved   = "workspace.moved"   // MoveWorkspace
	EventWorkspaceStatus  = "workspace.status"  // status changed
	EventWorkspaceDeleted = "workspace.deleted" // DeleteWorkspace
	EventPlacementFailed  = "placement.failed"
)

// DefaultEventLimit is the number of events ListEvents returns when the
// filter gives no limit.
const DefaultEventLimit = 100

// Event is one entry of the event log. ServerID and WorkspaceID are plain
// text, not foreign keys: events outlive what they name.
type Event struct {
	ID          int64
	At          time.Time
	Kind        string
	ServerID    string
	WorkspaceID string
	Message     string
	Data        map[string]any
}

// EventFilter selects events for ListEvents. Empty fields match everything.
type EventFilter struct {
	ServerID    string
	WorkspaceID string
	Limit       int // 0 means DefaultEventLimit
}

// AddEvent appends e to the log and returns its id. A zero At means now.
func (db *DB) AddEvent(ctx context.Context, e Event) (int64, error) {
	var id int64
	err := db.writeTx(ctx, func(tx *wtx) error {
		var err error
		id, err = addEventTx(ctx, tx, e)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("add event %s: %w", e.Kind, err)
	}
	return id, nil
}

// addEventTx appends e inside a write transaction.
func addEventTx(ctx context.Context, tx *wtx, e Event) (int64, error) {
	if e.Kind == "" {
		return 0, fmt.Errorf("event kind is empty: %w", ErrInvalid)
	}
	if e.At.IsZero() {
		e.At = now()
	}
	data, err := encodeAnyMap(e.Data)
	if err != nil {
		return 0, err
	}
	var id int64
	err = tx.QueryRowContext(ctx, `
		INSERT INTO events (at, kind, server_id, workspace_id, message, data)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		formatTime(e.At), e.Kind, nullString(e.ServerID), nullString(e.WorkspaceID), e.Message, data,
	).Scan(&id)
	return id, err
}

// ListEvents returns the events matching f, newest first.
func (db *DB) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	var w filter
	w.eq("server_id", f.ServerID)
	w.eq("workspace_id", f.WorkspaceID)
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultEventLimit
	}
	q := "SELECT id, at, kind, server_id, workspace_id, message, data FROM events" + w.sql()
	q += " ORDER BY id DESC LIMIT ?"
	args := append(w.args, limit)

	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	events := []Event{}
	for rows.Next() {
		var (
			e                 Event
			at, data          string
			server, workspace sql.NullString
		)
		if err := rows.Scan(&e.ID, &at, &e.Kind, &server, &workspace, &e.Message, &data); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if e.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if e.Data, err = decodeAnyMap(data); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.ServerID, e.WorkspaceID = server.String, workspace.String
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}

// PruneEvents deletes the events older than before and returns how many went.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM events WHERE at < ?", formatTime(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return n, nil
}
