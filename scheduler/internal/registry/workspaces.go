package registry

import (
	"berth/scheduler/internal/fleet"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultPort is the workspace port of the contract (§5.2): always 8080.
const DefaultPort = 8080

// Workspace is a workspace row: the WorkspaceInfo fields of the compute API
// (contract §5.2) plus the placement. Empty strings stand for null.
type Workspace struct {
	ID           string
	UserID       string
	SessionID    string
	Status       fleet.Status
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
	Settings     Settings // the create options kept for the workspace's life; no secrets
	// AcknowledgedAt is set when the create was answered; from then on the
	// workspace is never dropped as an interrupted create. Zero = never
	// acknowledged. Once set it cannot be changed or cleared.
	AcknowledgedAt time.Time

	Reservation fleet.Resources // held on ServerID until the row is deleted or moved
	Epoch       int64           // fencing epoch of the placement, from the server's counter
	UpdatedAt   time.Time       // set by the registry on every write
}

// Settings are the create options a workspace keeps for its whole life (a
// re-placement starts the new container with them). They hold no secrets:
// credentials are kept apart (Credentials).
type Settings struct {
	GitBranch        string `json:"git_branch,omitempty"`
	GitName          string `json:"git_name,omitempty"`
	GitEmail         string `json:"git_email,omitempty"`
	BaseImage        string `json:"base_image,omitempty"`
	RegionPreference string `json:"region_preference,omitempty"`
	// IdleTimeoutHours is the create's timeout_hours when it gave one: the
	// workspace is stopped after that long unused; 0 = the scheduler's
	// default.
	IdleTimeoutHours int `json:"idle_timeout_hours,omitempty"`
}

// Credentials are a workspace's secrets, stored in their own table and read
// only by GetCredentials: never in a list, never in the row's JSON.
type Credentials struct {
	Git string // git_credentials of the create request
}

// WorkspaceFilter selects workspaces for ListWorkspaces. Empty fields match
// everything; Statuses matches any of the listed statuses.
//
// A list is in the order (created_at, id), oldest first, or newest first
// with NewestFirst. Limit and After page through that order by key, never
// by offset: a page is the first Limit rows past the position After, and
// the next page starts after the last row's Cursor. A row that exists for
// the whole walk is listed exactly once, whatever is added or deleted
// between pages. Zero Limit and After list everything.
type WorkspaceFilter struct {
	UserID    string
	SessionID string
	ServerID  string
	Statuses  []fleet.Status

	Limit       int             // at most this many rows; 0 = no cap, < 0 is ErrInvalid
	After       WorkspaceCursor // list only the rows past it in the list's order; zero = from the start
	NewestFirst bool
}

// WorkspaceCursor is a position in the workspace order: a row's creation
// time and id. It stays valid when that row is deleted.
type WorkspaceCursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether c is the zero cursor: the start of a list.
func (c WorkspaceCursor) IsZero() bool { return c.ID == "" && c.CreatedAt.IsZero() }

// Cursor is w's position in the workspace order: the After of the page
// that follows a page ending with w.
func (w Workspace) Cursor() WorkspaceCursor { return WorkspaceCursor{CreatedAt: w.CreatedAt, ID: w.ID} }

// where is the selection of f (not its paging) as SQL conditions.
func (f WorkspaceFilter) where() filter {
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
	return w
}

const workspaceColumns = `id, user_id, session_id, status, status_reason, tier, host, port, server_id, container_id,
	repos, created_at, last_activity, metadata, auth_token, image, repositories, environment, settings,
	acknowledged_at, res_cpu, res_memory_mb, res_disk_gb, res_bandwidth_mbps, res_gpu_count, epoch, updated_at`

func scanWorkspace(sc scanner) (Workspace, error) {
	var (
		w                                          Workspace
		serverID, containerID, token, image, acked sql.NullString
		repos, repositories, metadata, env         string
		settings, created, lastActivity, updated   string
	)
	err := sc.Scan(&w.ID, &w.UserID, &w.SessionID, &w.Status, &w.StatusReason, &w.Tier, &w.Host, &w.Port,
		&serverID, &containerID, &repos, &created, &lastActivity, &metadata, &token, &image,
		&repositories, &env, &settings, &acked,
		&w.Reservation.CPU, &w.Reservation.MemoryMB, &w.Reservation.DiskGB, &w.Reservation.BandwidthMbps,
		&w.Reservation.GPUCount, &w.Epoch, &updated)
	if err != nil {
		return Workspace{}, err
	}
	w.ServerID, w.ContainerID, w.AuthToken, w.Image = serverID.String, containerID.String, token.String, image.String
	if w.Settings, err = decodeSettings(settings); err != nil {
		return Workspace{}, err
	}
	if w.AcknowledgedAt, err = parseNullTime(acked); err != nil {
		return Workspace{}, err
	}
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
	settings, err := encodeSettings(w.Settings)
	if err != nil {
		return nil, err
	}
	return []any{w.ID, w.UserID, w.SessionID, w.Status, w.StatusReason, w.Tier, w.Host, w.Port,
		nullString(w.ServerID), nullString(w.ContainerID), repos, formatTime(w.CreatedAt),
		formatTime(w.LastActivity), metadata, nullString(w.AuthToken), nullString(w.Image), repositories,
		env, settings, nullTime(w.AcknowledgedAt), w.Reservation.CPU, w.Reservation.MemoryMB,
		w.Reservation.DiskGB, w.Reservation.BandwidthMbps, w.Reservation.GPUCount, w.Epoch,
		formatTime(w.UpdatedAt)}, nil
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

// validateSettings checks that every setting is plain text: valid UTF-8
// without control characters. They reach the container as environment
// values and git configuration, where a NUL cannot be passed and a newline
// would start another entry. Settings are checked when they are written
// (insert, or an update that changes them), so a row stored before a rule
// existed can still have its status updated.
func validateSettings(s Settings) error {
	if s.IdleTimeoutHours < 0 {
		return fmt.Errorf("setting idle_timeout_hours %d: negative: %w", s.IdleTimeoutHours, ErrInvalid)
	}
	for _, f := range []struct{ name, value string }{
		{"git_branch", s.GitBranch}, {"git_name", s.GitName}, {"git_email", s.GitEmail},
		{"base_image", s.BaseImage}, {"region_preference", s.RegionPreference},
	} {
		if !plainText(f.value) {
			return fmt.Errorf("setting %s %q: not plain text: %w", f.name, f.value, ErrInvalid)
		}
	}
	return nil
}

// validateCredentials is validateSettings for secrets: the error does not
// show the value. A newline in git credentials would add a line to the
// container's credential store.
func validateCredentials(c Credentials) error {
	if !plainText(c.Git) {
		return fmt.Errorf("git credentials: not plain text: %w", ErrInvalid)
	}
	return nil
}

// plainText reports whether s is valid UTF-8 without control characters.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

func validateResources(r fleet.Resources) error {
	if r.CPU < 0 || r.MemoryMB < 0 || r.DiskGB < 0 || r.BandwidthMbps < 0 || r.GPUCount < 0 {
		return fmt.Errorf("negative resources %+v: %w", r, ErrInvalid)
	}
	return nil
}

func insertWorkspaceTx(ctx context.Context, tx *wtx, w Workspace) error {
	args, err := workspaceValues(w)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO workspaces ("+workspaceColumns+") VALUES ("+placeholders(len(args))+")", args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("workspace %q: %w", w.ID, ErrExists)
	}
	if err != nil {
		return err
	}
	tx.addUsage(w.ServerID, w.ID, w.Reservation, +1)
	return billTx(ctx, tx, w.ID, &w, w.UpdatedAt)
}

// GetWorkspace returns the workspace with the given id, or ErrNotFound.
func (db *DB) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	w, err := getWorkspace(ctx, db.read, id)
	if err != nil {
		return Workspace{}, fmt.Errorf("get workspace: %w", err)
	}
	return w, nil
}

// ListWorkspaces returns the workspaces matching f, oldest first (newest
// first with f.NewestFirst), one page of them when f has a Limit or an
// After. A page is read from an index in list order (migration 5), so its
// cost follows the page, not the table.
func (db *DB) ListWorkspaces(ctx context.Context, f WorkspaceFilter) ([]Workspace, error) {
	q, args, err := listWorkspacesQuery(f)
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
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

// listWorkspacesQuery is ListWorkspaces' query for f. The position After
// is compared as a row value, which SQLite reads as a range of the index on
// (created_at, id) or (server_id, created_at, id).
func listWorkspacesQuery(f WorkspaceFilter) (string, []any, error) {
	if f.Limit < 0 {
		return "", nil, fmt.Errorf("limit %d: %w", f.Limit, ErrInvalid)
	}
	w := f.where()
	past, order := ">", " ORDER BY created_at, id"
	if f.NewestFirst {
		past, order = "<", " ORDER BY created_at DESC, id DESC"
	}
	if !f.After.IsZero() {
		w.where = append(w.where, "(created_at, id) "+past+" (?, ?)")
		w.args = append(w.args, formatTime(f.After.CreatedAt), f.After.ID)
	}
	q := "SELECT " + workspaceColumns + " FROM workspaces" + w.sql() + order
	if f.Limit > 0 {
		q += " LIMIT ?"
		w.args = append(w.args, f.Limit)
	}
	return q, w.args, nil
}

// CountWorkspaces counts the workspaces f selects, in SQL; f's paging
// (Limit, After, NewestFirst) is ignored: it is the total a paged list
// walks through.
func (db *DB) CountWorkspaces(ctx context.Context, f WorkspaceFilter) (int, error) {
	w := f.where()
	var n int
	if err := db.read.QueryRowContext(ctx, "SELECT COUNT(*) FROM workspaces"+w.sql(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count workspaces: %w", err)
	}
	return n, nil
}

// CountByStatus counts the workspaces of each status, in SQL: cheap enough
// to run on every metrics scrape.
func (db *DB) CountByStatus(ctx context.Context) (map[fleet.Status]int, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT status, COUNT(*) FROM workspaces GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("count workspaces: %w", err)
	}
	defer rows.Close()
	out := map[fleet.Status]int{}
	for rows.Next() {
		var s fleet.Status
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
// repositories, environment, settings) and set AcknowledgedAt once; changing
// the identity or placement (ID, UserID, SessionID, ServerID, Reservation,
// Epoch, CreatedAt) or an AcknowledgedAt already set gives ErrInvalid: use
// MoveWorkspace and ResizeWorkspace for the placement. UpdatedAt is set to
// now. A status change is recorded as a workspace.status event. Credentials
// are not part of the row and are not changed.
func (db *DB) UpdateWorkspace(ctx context.Context, id string, fn func(*Workspace) error) (Workspace, error) {
	var out Workspace
	err := db.writeTx(ctx, func(tx *wtx) error {
		var err error
		out, err = updateWorkspaceTx(ctx, tx, id, fn)
		return err
	})
	if err != nil {
		return Workspace{}, fmt.Errorf("update workspace: %w", err)
	}
	return out, nil
}

func updateWorkspaceTx(ctx context.Context, tx *wtx, id string, fn func(*Workspace) error) (Workspace, error) {
	return updateWorkspaceAtTx(ctx, tx, id, time.Time{}, fn)
}

// updateWorkspaceAtTx is updateWorkspaceTx for a change that happened at at
// (zero: now), the time its billing interval closes or opens (billTx).
func updateWorkspaceAtTx(ctx context.Context, tx *wtx, id string, at time.Time, fn func(*Workspace) error) (Workspace, error) {
	old, err := getWorkspace(ctx, tx, id)
	if err != nil {
		return Workspace{}, err
	}
	was, err := storedOf(old)
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
	w.AcknowledgedAt = normTime(w.AcknowledgedAt)
	if !old.AcknowledgedAt.IsZero() && !w.AcknowledgedAt.Equal(old.AcknowledgedAt) {
		return Workspace{}, fmt.Errorf("workspace %q: acknowledged at %v, cannot change it to %v: %w",
			id, old.AcknowledgedAt, w.AcknowledgedAt, ErrInvalid)
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
	if w.Settings != old.Settings {
		if err := validateSettings(w.Settings); err != nil {
			return Workspace{}, fmt.Errorf("workspace %q: %w", id, err)
		}
	}
	if at.IsZero() {
		at = w.UpdatedAt
	}
	if err := writeWorkspaceAtTx(ctx, tx, was, w, at); err != nil {
		return Workspace{}, err
	}
	if w.Status != old.Status {
		if err := statusEventTx(ctx, tx, w, old.Status); err != nil {
			return Workspace{}, err
		}
	}
	return w, nil
}

// stored is a row as it was read, encoded before anything changes it: a
// copy of a Workspace shares its maps and slices with the original.
type stored struct {
	values   []any // workspaceValues
	serverID string
	res      fleet.Resources
}

func storedOf(w Workspace) (stored, error) {
	v, err := workspaceValues(w)
	return stored{values: v, serverID: w.ServerID, res: w.Reservation}, err
}

// writeWorkspaceTx writes the row w.ID, which was old, and moves its
// billing mark as of w.UpdatedAt.
func writeWorkspaceTx(ctx context.Context, tx *wtx, old stored, w Workspace) error {
	return writeWorkspaceAtTx(ctx, tx, old, w, w.UpdatedAt)
}

// workspaceColumnNames are workspaceColumns one by one.
var workspaceColumnNames = strings.Split(strings.Join(strings.Fields(workspaceColumns), ""), ",")

// writeWorkspaceAtTx is writeWorkspaceTx for a change that happened at at.
// Only the columns that changed are written: SQLite then updates only the
// indexes on those columns (a status change touches one index, not seven).
func writeWorkspaceAtTx(ctx context.Context, tx *wtx, old stored, w Workspace, at time.Time) error {
	args, err := workspaceValues(w)
	if err != nil {
		return err
	}
	was := old.values
	var set strings.Builder
	var changed []any
	for i := 1; i < len(args); i++ { // the id (0) is the key
		if args[i] == was[i] {
			continue
		}
		if set.Len() > 0 {
			set.WriteString(", ")
		}
		set.WriteString(workspaceColumnNames[i] + " = ?")
		changed = append(changed, args[i])
	}
	if len(changed) > 0 {
		if _, err := tx.ExecContext(ctx, "UPDATE workspaces SET "+set.String()+" WHERE id = ?", append(changed, w.ID)...); err != nil {
			return err
		}
	}
	if old.serverID != w.ServerID || old.res != w.Reservation {
		tx.addUsage(old.serverID, w.ID, old.res, -1)
		tx.addUsage(w.ServerID, w.ID, w.Reservation, +1)
	}
	return billTx(ctx, tx, w.ID, &w, at)
}

func statusEventTx(ctx context.Context, tx *wtx, w Workspace, old fleet.Status) error {
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
func (db *DB) SetWorkspaceStatus(ctx context.Context, id string, status fleet.Status, reason string) (bool, error) {
	return db.SetWorkspaceStatusAt(ctx, id, status, reason, time.Time{})
}

// SetWorkspaceStatusAt is SetWorkspaceStatus for a change that happened at
// at (zero: now), e.g. the time of the agent's container event: the
// workspace's billing interval closes or opens at that moment.
func (db *DB) SetWorkspaceStatusAt(ctx context.Context, id string, status fleet.Status, reason string, at time.Time) (bool, error) {
	if !status.Valid() {
		return false, fmt.Errorf("set workspace status: %q: %w", status, ErrInvalid)
	}
	var changed bool
	err := db.writeTx(ctx, func(tx *wtx) error {
		var oldStatus fleet.Status
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
		if oldStatus == fleet.StatusPendingDeletion {
			return nil // sticky: only the cleanup that deletes the row ends it
		}
		changed = oldStatus != status
		_, err = updateWorkspaceAtTx(ctx, tx, id, at, func(w *Workspace) error {
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

// GetCredentials returns the workspace's credentials: zero Credentials when
// it has none, ErrNotFound when there is no such workspace.
func (db *DB) GetCredentials(ctx context.Context, id string) (Credentials, error) {
	var git sql.NullString
	err := db.read.QueryRowContext(ctx, `
		SELECT c.git FROM workspaces w LEFT JOIN workspace_credentials c ON c.workspace_id = w.id
		WHERE w.id = ?`, id).Scan(&git)
	if errors.Is(err, sql.ErrNoRows) {
		return Credentials{}, fmt.Errorf("get credentials: workspace %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("get credentials: workspace %q: %w", id, err)
	}
	return db.openCredentials(id, Credentials{Git: git.String})
}

// insertCredentialsTx stores c for the workspace id; zero c stores nothing.
func insertCredentialsTx(ctx context.Context, tx *wtx, id string, c Credentials) error {
	if c == (Credentials{}) {
		return nil
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO workspace_credentials (workspace_id, git) VALUES (?, ?)", id, c.Git)
	return err
}

// DeleteWorkspace removes the workspace row, which releases its reservation
// and deletes its credentials. ErrNotFound if there is no such row.
func (db *DB) DeleteWorkspace(ctx context.Context, id string) error {
	_, err := db.DeleteWorkspaceIf(ctx, id, nil)
	return err
}

// DeleteWorkspaceIf deletes the row (and, by the foreign key's cascade, its
// credentials) only if ok is nil or returns true for it as it is inside the
// write transaction, so a decision taken on an older read cannot delete a row
// that has changed since. It reports whether the row was deleted; ErrNotFound
// if there is no such row.
func (db *DB) DeleteWorkspaceIf(ctx context.Context, id string, ok func(Workspace) bool) (bool, error) {
	deleted := false
	err := db.writeTx(ctx, func(tx *wtx) error {
		w, err := getWorkspace(ctx, tx, id)
		if err != nil {
			return err
		}
		if ok != nil && !ok(w) {
			return nil
		}
		if err := billTx(ctx, tx, id, nil, now()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM workspaces WHERE id = ?", id); err != nil {
			return err
		}
		tx.addUsage(w.ServerID, w.ID, w.Reservation, -1)
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
