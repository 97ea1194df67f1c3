package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is a workspace's status (contract §8.1).
type Status string

const (
	StatusCreating        Status = "creating"
	StatusRunning         Status = "running"
	StatusStopping        Status = "stopping"
	StatusStopped         Status = "stopped"
	StatusError           Status = "error"
	StatusPendingDeletion Status = "pending_deletion"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusCreating, StatusRunning, StatusStopping, StatusStopped, StatusError, StatusPendingDeletion:
		return true
	}
	return false
}

// DefaultPort is the workspace port of the contract (§5.2): always 8080.
const DefaultPort = 8080

// Resources is an amount of server capacity: a workspace's reservation, or a
// sum of reservations.
type Resources struct {
	CPU           float64
	MemoryMB      int64
	DiskGB        int64
	BandwidthMbps int64
	GPUCount      int
}

// Workspace is a workspace row: the WorkspaceInfo fields of the compute API
// (contract §5.2) plus the placement. Empty strings stand for null.
type Workspace struct {
	ID           string
	UserID       string
	SessionID    string
	Status       Status
	StatusReason string // why the status was set (e.g. the agent error); "" if none
	Tier         string
	Host         string // the server's hostname, or its id when it has none
	Port         int    // 0 means DefaultPort on insert
	ServerID     string // "" = not placed
	ContainerID  string
	Repos        []string
	CreatedAt    time.Time // zero means now on insert
	LastActivity time.Time // zero means CreatedAt on insert
	Metadata     map[string]any
	AuthToken    string
	Image        string
	Repositories []string
	Environment  map[string]string
	Config       json.RawMessage // the create request's config, as sent; empty = {}

	Reservation Resources // held on ServerID until the row is deleted or moved
	Epoch       int64     // fencing epoch of the placement, from the server's counter
	UpdatedAt   time.Time // set by the registry on every write
}

// WorkspaceFilter selects workspaces for ListWorkspaces. Empty fields match
// everything; Statuses matches any of the listed statuses.
type WorkspaceFilter struct {
	UserID    string
	SessionID string
	ServerID  string
	Statuses  []Status
}

const workspaceColumns = `id, user_id, session_id, status, status_reason, tier, host, port, server_id, container_id,
	repos, created_at, last_activity, metadata, auth_token, image, repositories, environment, config,
	res_cpu, res_memory_mb, res_disk_gb, res_bandwidth_mbps, res_gpu_count, epoch, updated_at`

func scanWorkspace(sc scanner) (Workspace, error) {
	var (
		w                                      Workspace
		serverID, containerID, token, image    sql.NullString
		repos, repositories, metadata, env     string
		config, created, lastActivity, updated string
	)
	err := sc.Scan(&w.ID, &w.UserID, &w.SessionID, &w.Status, &w.StatusReason, &w.Tier, &w.Host, &w.Port,
		&serverID, &containerID, &repos, &created, &lastActivity, &metadata, &token, &image,
		&repositories, &env, &config,
		&w.Reservation.CPU, &w.Reservation.MemoryMB, &w.Reservation.DiskGB, &w.Reservation.BandwidthMbps,
		&w.Reservation.GPUCount, &w.Epoch, &updated)
	if err != nil {
		return Workspace{}, err
	}
	w.ServerID, w.ContainerID, w.AuthToken, w.Image = serverID.String, containerID.String, token.String, image.String
	w.Config = json.RawMessage(config)
	if w.Repos, err = decodeStrings(repos); err != nil {
		return Workspace{}, err
	}
	if w.Repositories, err = decodeStrings(repositories); err != nil {
		return Workspace{}, err
	}
	if w.Metadata, err = decodeAnyMap(metadata); err != nil {
		return Workspace{}, err
	}
	if w.Environment, err = decodeStringMap(env); err != nil {
		return Workspace{}, err
	}
	if w.CreatedAt, err = parseTime(created); err != nil {
		return Workspace{}, err
	}
	if w.LastActivity, err = parseTime(lastActivity); err != nil {
		return Workspace{}, err
	}
	if w.UpdatedAt, err = parseTime(updated); err != nil {
		return Workspace{}, err
	}
	return w, nil
}

func getWorkspace(ctx context.Context, q queryer, id string) (Workspace, error) {
	w, err := scanWorkspace(q.QueryRowContext(ctx, "SELECT "+workspaceColumns+" FROM workspaces WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Workspace{}, fmt.Errorf("workspace %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Workspace{}, fmt.Errorf("workspace %q: %w", id, err)
	}
	return w, nil
}

// workspaceValues returns the column values of w in workspaceColumns order.
func workspaceValues(w Workspace) ([]any, error) {
	repos, err := encodeStrings(w.Repos)
	if err != nil {
		return nil, err
	}
	repositories, err := encodeStrings(w.Repositories)
	if err != nil {
		return nil, err
	}
	metadata, err := encodeAnyMap(w.Metadata)
	if err != nil {
		return nil, err
	}
	env, err := encodeStringMap(w.Environment)
	if err != nil {
		return nil, err
	}
	config, err := encodeRaw(w.Config)
	if err != nil {
		return nil, err
	}
	return []any{w.ID, w.UserID, w.SessionID, w.Status, w.StatusReason, w.Tier, w.Host, w.Port,
		nullString(w.ServerID), nullString(w.ContainerID), repos, formatTime(w.CreatedAt),
		formatTime(w.LastActivity), metadata, nullString(w.AuthToken), nullString(w.Image), repositories,
		env, config, w.Reservation.CPU, w.Reservation.MemoryMB, w.Reservation.DiskGB,
		w.Reservation.BandwidthMbps, w.Reservation.GPUCount, w.Epoch, formatTime(w.UpdatedAt)}, nil
}

func validateWorkspace(w Workspace) error {
	switch {
	case w.ID == "":
		return fmt.Errorf("workspace id is empty: %w", ErrInvalid)
	case w.UserID == "":
		return fmt.Errorf("workspace %q: user id is empty: %w", w.ID, ErrInvalid)
	case !w.Status.Valid():
		return fmt.Errorf("workspace %q: status %q: %w", w.ID, w.Status, ErrInvalid)
	case w.Port <= 0 || w.Port > 65535:
		return fmt.Errorf("workspace %q: port %d: %w", w.ID, w.Port, ErrInvalid)
	}
	return validateResources(w.Reservation)
}

func validateResources(r Resources) error {
	if r.CPU < 0 || r.MemoryMB < 0 || r.DiskGB < 0 || r.BandwidthMbps < 0 || r.GPUCount < 0 {
		return fmt.Errorf("negative resources %+v: %w", r, ErrInvalid)
	}
	return nil
}

func insertWorkspaceTx(ctx context.Context, tx *sql.Tx, w Workspace) error {
	args, err := workspaceValues(w)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO workspaces ("+workspaceColumns+") VALUES ("+placeholders(len(args))+")", args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("workspace %q: %w", w.ID, ErrExists)
	}
	return err
}

// GetWorkspace returns the workspace with the given id, or ErrNotFound.
func (db *DB) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	w, err := getWorkspace(ctx, db.read, id)
	if err != nil {
		return Workspace{}, fmt.Errorf("get workspace: %w", err)
	}
	return w, nil
}

// ListWorkspaces returns the workspaces matching f, oldest first.
func (db *DB) ListWorkspaces(ctx context.Context, f WorkspaceFilter) ([]Workspace, error) {
	var w filter
	w.eq("user_id", f.UserID)
	w.eq("session_id", f.SessionID)
	w.eq("server_id", f.ServerID)
	if len(f.Statuses) > 0 {
		w.where = append(w.where, "status IN ("+placeholders(len(f.Statuses))+")")
		for _, s := range f.Statuses {
			w.args = append(w.args, s)
		}
	}
	q := "SELECT " + workspaceColumns + " FROM workspaces" + w.sql() + " ORDER BY created_at, id"
	args := w.args

	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	defer rows.Close()
	list := []Workspace{}
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, fmt.Errorf("list workspaces: %w", err)
		}
		list = append(list, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	return list, nil
}

// CountByStatus counts the workspaces of each status, in SQL: cheap enough
// to run on every metrics scrape.
func (db *DB) CountByStatus(ctx context.Context) (map[Status]int, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT status, COUNT(*) FROM workspaces GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("count workspaces: %w", err)
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var s Status
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count workspaces: %w", err)
		}
		out[s] = n
	}
	return out, rows.Err()
}

// UpdateWorkspace reads the workspace, calls fn on it and writes the result
// back, all in one write transaction, and returns the row as stored. If fn
// returns an error nothing is written and the error is returned (wrapped).
// fn may change the descriptive fields (status, reason, tier, host, port,
// container id, repos, last activity, metadata, auth token, image,
// repositories, environment, config); changing the identity or placement
// (ID, UserID, SessionID, ServerID, Reservation, Epoch, CreatedAt) gives
// ErrInvalid: use MoveWorkspace and ResizeWorkspace for those. UpdatedAt is
// set to now. A status change is recorded as a workspace.status event.
func (db *DB) UpdateWorkspace(ctx context.Context, id string, fn func(*Workspace) error) (Workspace, error) {
	var out Workspace
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = updateWorkspaceTx(ctx, tx, id, fn)
		return err
	})
	if err != nil {
		return Workspace{}, fmt.Errorf("update workspace: %w", err)
	}
	return out, nil
}

func updateWorkspaceTx(ctx context.Context, tx *sql.Tx, id string, fn func(*Workspace) error) (Workspace, error) {
	old, err := getWorkspace(ctx, tx, id)
	if err != nil {
		return Workspace{}, err
	}
	w := old
	if err := fn(&w); err != nil {
		return Workspace{}, err
	}
	if w.ID != old.ID || w.UserID != old.UserID || w.SessionID != old.SessionID || w.ServerID != old.ServerID ||
		w.Reservation != old.Reservation || w.Epoch != old.Epoch || !normTime(w.CreatedAt).Equal(old.CreatedAt) {
		return Workspace{}, fmt.Errorf("workspace %q: identity or placement changed: %w", id, ErrInvalid)
	}
	w.LastActivity = normTime(w.LastActivity)
	w.CreatedAt = old.CreatedAt
	w.UpdatedAt = now()
	if w.LastActivity.IsZero() {
		w.LastActivity = old.LastActivity
	}
	if err := validateWorkspace(w); err != nil {
		return Workspace{}, err
	}
	if err := writeWorkspaceTx(ctx, tx, w); err != nil {
		return Workspace{}, err
	}
	if w.Status != old.Status {
		if err := statusEventTx(ctx, tx, w, old.Status); err != nil {
			return Workspace{}, err
		}
	}
	return w, nil
}

// writeWorkspaceTx overwrites every column of the existing row w.ID.
func writeWorkspaceTx(ctx context.Context, tx *sql.Tx, w Workspace) error {
	args, err := workspaceValues(w)
	if err != nil {
		return err
	}
	args = append(args[1:], w.ID) // all columns but id, then the key
	cols := strings.TrimPrefix(workspaceColumns, "id, ")
	_, err = tx.ExecContext(ctx,
		"UPDATE workspaces SET ("+cols+") = ("+placeholders(len(args)-1)+") WHERE id = ?", args...)
	return err
}

func statusEventTx(ctx context.Context, tx *sql.Tx, w Workspace, old Status) error {
	msg := fmt.Sprintf("workspace %s: %s -> %s", w.ID, old, w.Status)
	data := map[string]any{"from": string(old), "to": string(w.Status)}
	if w.StatusReason != "" {
		msg += ": " + w.StatusReason
		data["reason"] = w.StatusReason
	}
	_, err := addEventTx(ctx, tx, Event{At: w.UpdatedAt, Kind: EventWorkspaceStatus, ServerID: w.ServerID,
		WorkspaceID: w.ID, Message: msg, Data: data})
	return err
}

// SetWorkspaceStatus sets the workspace's status and reason and reports
// whether the status changed. Setting the same status and reason again
// writes nothing. A change is recorded as a workspace.status event.
// pending_deletion is sticky: a workspace marked for deletion keeps that
// status until its row is deleted (contract §15).
func (db *DB) SetWorkspaceStatus(ctx context.Context, id string, status Status, reason string) (bool, error) {
	if !status.Valid() {
		return false, fmt.Errorf("set workspace status: %q: %w", status, ErrInvalid)
	}
	var changed bool
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var oldStatus Status
		var oldReason string
		err := tx.QueryRowContext(ctx, "SELECT status, status_reason FROM workspaces WHERE id = ?", id).
			Scan(&oldStatus, &oldReason)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("workspace %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if oldStatus == status && oldReason == reason {
			return nil
		}
		if oldStatus == StatusPendingDeletion {
			return nil // sticky: only the cleanup that deletes the row ends it
		}
		changed = oldStatus != status
		_, err = updateWorkspaceTx(ctx, tx, id, func(w *Workspace) error {
			w.Status, w.StatusReason = status, reason
			return nil
		})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("set workspace status: %w", err)
	}
	return changed, nil
}

// DeleteWorkspace removes the workspace row, which releases its reservation.
// ErrNotFound if there is no such row.
func (db *DB) DeleteWorkspace(ctx context.Context, id string) error {
	_, err := db.DeleteWorkspaceIf(ctx, id, nil)
	return err
}

// DeleteWorkspaceIf deletes the row only if keep is nil or returns true for
// it as it is inside the write transaction, so a decision taken on an older
// read cannot delete a row that has changed since. It reports whether the
// row was deleted; ErrNotFound if there is no such row.
func (db *DB) DeleteWorkspaceIf(ctx context.Context, id string, ok func(Workspace) bool) (bool, error) {
	deleted := false
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		w, err := getWorkspace(ctx, tx, id)
		if err != nil {
			return err
		}
		if ok != nil && !ok(w) {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM workspaces WHERE id = ?", id); err != nil {
			return err
		}
		deleted = true
		_, err = addEventTx(ctx, tx, Event{Kind: EventWorkspaceDeleted, ServerID: w.ServerID, WorkspaceID: id,
			Message: fmt.Sprintf("workspace %s deleted (was %s)", id, w.Status)})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete workspace: %w", err)
	}
	return deleted, nil
}
