package registry

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"berth/scheduler/internal/fleet"
)

// This file is the registry's half of compute billing (package billing has
// the loop that drives it): a billing mark per running workspace, and the
// outbox of closed intervals. See the package doc, "Billing".

// Reasons an interval was closed, as the outbox records them. A status
// change is recorded as the new status ("stopped", "error",
// "pending_deletion", "creating").
const (
	BillReasonInterval  = "interval"          // the open interval reached the billing interval's length
	BillReasonDeleted   = "deleted"           // the workspace row was deleted
	BillReasonTier      = "tier_changed"      // a scale: the new tier starts a new interval
	BillReasonPlacement = "placement_changed" // another server or container
	BillReasonResumed   = "billing_resumed"   // StartBilling found a mark its row no longer matched
)

// BillingMark is the open billing interval of a running workspace: its
// compute time from Since on is not yet in the outbox.
type BillingMark struct {
	WorkspaceID string
	UserID      string
	SessionID   string
	Tier        string
	ServerID    string
	ContainerID string
	Since       time.Time
}

// UsageRecord is one closed interval in the outbox: a compute_seconds usage
// event with the id it keeps for every retry.
type UsageRecord struct {
	Seq         int64
	EventID     string // ^[a-zA-Z0-9_-]+$, unique, random
	UserID      string
	SessionID   string
	WorkspaceID string
	Tier        string
	ServerID    string
	ContainerID string
	Start       time.Time
	End         time.Time // Start + Seconds
	Seconds     int64     // > 0
	Reason      string    // why it was closed (BillReason…, or the new status)
	CreatedAt   time.Time // when the row was written

	Attempts      int       // failed sends so far
	NextAttemptAt time.Time // not sent before this
	Solo          bool      // sent alone: a batch it was in was refused
	LastError     string
	SentAt        time.Time // zero while pending
}

// UsageFilter selects outbox rows for ListUsage; empty fields match all.
type UsageFilter struct {
	WorkspaceID string
	Pending     bool // only rows not yet acknowledged
	Limit       int  // 0 means DefaultEventLimit
}

// BillingSummary is the state of billing at one instant.
type BillingSummary struct {
	Enabled        bool
	OpenIntervals  int
	Pending        int   // outbox rows not yet acknowledged: the outbox depth
	PendingSeconds int64 // the compute seconds they carry
	OldestPending  time.Time
	Failing        int    // pending rows that failed at least once
	LastError      string // of the most recently failed pending row
	Sent           int    // acknowledged rows still kept
	SentSeconds    int64
	LastSent       time.Time
}

// splitInterval bills the time from since to at: the whole seconds in it,
// and where the open interval continues (since plus those seconds, so a
// fraction of a second is carried, never lost or billed twice). at is first
// clamped to [since, limit]: an agent's clock ahead of ours, or an event
// older than the mark, bills nothing that did not happen after the mark.
func splitInterval(since, at, limit time.Time) (int64, time.Time) {
	if at.After(limit) {
		at = limit
	}
	if !at.After(since) {
		return 0, since
	}
	secs := int64(at.Sub(since) / time.Second)
	return secs, since.Add(time.Duration(secs) * time.Second)
}

// markOf is the mark a workspace row calls for: running rows are billed.
// row nil (being deleted) or not running: none.
func markOf(row *Workspace) (BillingMark, bool) {
	if row == nil || row.Status != fleet.StatusRunning {
		return BillingMark{}, false
	}
	return BillingMark{WorkspaceID: row.ID, UserID: row.UserID, SessionID: row.SessionID, Tier: row.Tier,
		ServerID: row.ServerID, ContainerID: row.ContainerID}, true
}

// closeReason says why mark m ends when its row becomes row.
func closeReason(row *Workspace, m, want BillingMark, billable bool) string {
	switch {
	case row == nil:
		return BillReasonDeleted
	case !billable:
		return string(row.Status)
	case want.Tier != m.Tier:
		return BillReasonTier
	case want.ServerID != m.ServerID || want.ContainerID != m.ContainerID:
		return BillReasonPlacement
	}
	return BillReasonResumed
}

// sameInterval tells whether want continues m's interval.
func sameInterval(m, want BillingMark) bool {
	m.Since, want.Since = time.Time{}, time.Time{}
	return m == want
}

// billTx brings the billing mark of workspace id in line with row, the row
// as this transaction writes it (nil: the transaction deletes it), at time
// at (zero: now). It is called by every write of a workspace row, inside
// its transaction, so the status and the billing of a workspace never
// disagree, whatever instant the process dies at:
//   - a running row without a mark opens one at at;
//   - a row that stops being billed (not running, or deleted) closes its
//     interval at at into the outbox and drops the mark;
//   - a running row whose tier, server or container changed closes the
//     interval at at and opens the next one where the billed seconds end.
//
// With billing off (billing_state) it does nothing.
func billTx(ctx context.Context, tx *wtx, id string, row *Workspace, at time.Time) error {
	enabled, m, hasMark, err := markTx(ctx, tx, id)
	if err != nil || !enabled {
		return err
	}
	at = normTime(at)
	if at.IsZero() {
		at = now()
	}
	want, billable := markOf(row)
	if !hasMark {
		if !billable {
			return nil
		}
		if want.Since, err = openAtTx(ctx, tx, id, at); err != nil {
			return err
		}
		return putMarkTx(ctx, tx, want)
	}
	if billable && sameInterval(m, want) {
		return nil
	}
	next, err := closeTx(ctx, tx, m, at, closeReason(row, m, want, billable))
	if err != nil {
		return err
	}
	if !billable {
		_, err := tx.ExecContext(ctx, "DELETE FROM billing_marks WHERE workspace_id = ?", id)
		return err
	}
	want.Since = next
	return putMarkTx(ctx, tx, want)
}

// openAtTx is where a new interval of workspace id opened at at starts: at,
// but never in the future, and never before the end of the workspace's last
// billed interval (a start time read from Docker may lie before a stop that
// was billed: its seconds are in the outbox already).
func openAtTx(ctx context.Context, tx *wtx, id string, at time.Time) (time.Time, error) {
	if t := now(); at.After(t) {
		at = t
	}
	var last string
	err := tx.QueryRowContext(ctx, "SELECT ended_at FROM billing_outbox WHERE workspace_id = ? ORDER BY seq DESC LIMIT 1", id).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return at, nil
	} else if err != nil {
		return time.Time{}, err
	}
	end, err := parseTime(last)
	if err != nil {
		return time.Time{}, err
	}
	if at.Before(end) {
		return end, nil
	}
	return at, nil
}

// markTx reads whether billing is on and the workspace's mark.
func markTx(ctx context.Context, tx *wtx, id string) (bool, BillingMark, bool, error) {
	var (
		enabled                                         bool
		user, session, tier, server, container, sinceAt sql.NullString
	)
	err := tx.QueryRowContext(ctx, `
		SELECT s.enabled, m.user_id, m.session_id, m.tier, m.server_id, m.container_id, m.since
		FROM billing_state s LEFT JOIN billing_marks m ON m.workspace_id = ?
		WHERE s.id = 1`, id).Scan(&enabled, &user, &session, &tier, &server, &container, &sinceAt)
	if err != nil {
		return false, BillingMark{}, false, fmt.Errorf("billing mark of %q: %w", id, err)
	}
	if !sinceAt.Valid {
		return enabled, BillingMark{}, false, nil
	}
	since, err := parseTime(sinceAt.String)
	if err != nil {
		return false, BillingMark{}, false, err
	}
	return enabled, BillingMark{WorkspaceID: id, UserID: user.String, SessionID: session.String, Tier: tier.String,
		ServerID: server.String, ContainerID: container.String, Since: since}, true, nil
}

func putMarkTx(ctx context.Context, tx *wtx, m BillingMark) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO billing_marks (workspace_id, user_id, session_id, tier, server_id, container_id, since)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace_id) DO UPDATE SET user_id = excluded.user_id, session_id = excluded.session_id,
			tier = excluded.tier, server_id = excluded.server_id, container_id = excluded.container_id,
			since = excluded.since`,
		m.WorkspaceID, m.UserID, m.SessionID, m.Tier, m.ServerID, m.ContainerID, formatTime(m.Since))
	return err
}

// closeTx writes the whole seconds of m's interval up to at into the
// outbox (nothing when there is not one whole second) and returns where the
// next interval of the workspace would start.
func closeTx(ctx context.Context, tx *wtx, m BillingMark, at time.Time, reason string) (time.Time, error) {
	t := now()
	secs, next := splitInterval(m.Since, normTime(at), t)
	if secs == 0 {
		return next, nil
	}
	id, err := newEventID()
	if err != nil {
		return time.Time{}, err
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO billing_outbox (event_id, user_id, session_id, workspace_id, tier, server_id, container_id,
			started_at, ended_at, seconds, reason, created_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, m.UserID, m.SessionID, m.WorkspaceID, m.Tier, m.ServerID, m.ContainerID,
		formatTime(m.Since), formatTime(next), secs, reason, formatTime(t), formatTime(t))
	if err != nil {
		return time.Time{}, fmt.Errorf("billing outbox: %w", err)
	}
	return next, nil
}

// newEventID is a usage event id: "cs-" and 128 random bits in hex. It is
// made once, in the transaction that writes the row, and sent with every
// retry; the podex API de-duplicates on user_id:id.
func newEventID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("usage event id: %w", err)
	}
	return "cs-" + hex.EncodeToString(b[:]), nil
}

// StartBilling turns billing on (the scheduler runs with the podex API) and
// reconciles the marks with the rows in one transaction: a running
// workspace without a mark gets one at at; a mark whose row is no longer
// billed is closed at the row's last update (a row that is gone bills
// nothing more). A mark that matches its row is kept: after a crash or a
// restart the open interval continues from its mark, so the time the
// scheduler was down is billed once. It returns how many marks it opened
// and closed.
func (db *DB) StartBilling(ctx context.Context, at time.Time) (opened, closed int, err error) {
	at = normTime(at)
	if at.IsZero() {
		at = now()
	}
	err = db.writeTx(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE billing_state SET enabled = 1, updated_at = ? WHERE id = 1",
			formatTime(at)); err != nil {
			return err
		}
		marks, err := listMarks(ctx, tx)
		if err != nil {
			return err
		}
		marked := map[string]bool{}
		for _, m := range marks {
			marked[m.WorkspaceID] = true
			w, err := getWorkspace(ctx, tx, m.WorkspaceID)
			if errors.Is(err, ErrNotFound) {
				if _, err := tx.ExecContext(ctx, "DELETE FROM billing_marks WHERE workspace_id = ?", m.WorkspaceID); err != nil {
					return err
				}
				closed++
				continue
			} else if err != nil {
				return err
			}
			if want, ok := markOf(&w); ok && sameInterval(m, want) {
				continue
			}
			if err := billTx(ctx, tx, w.ID, &w, w.UpdatedAt); err != nil {
				return err
			}
			closed++
		}
		running, err := runningTx(ctx, tx)
		if err != nil {
			return err
		}
		for _, w := range running {
			if marked[w.ID] {
				continue
			}
			if err := billTx(ctx, tx, w.ID, &w, at); err != nil {
				return err
			}
			opened++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("start billing: %w", err)
	}
	return opened, closed, nil
}

// runningTx returns the running workspaces.
func runningTx(ctx context.Context, tx *wtx) ([]Workspace, error) {
	rows, err := tx.QueryContext(ctx, "SELECT "+workspaceColumns+" FROM workspaces WHERE status = ?", fleet.StatusRunning)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// StopBilling turns billing off (the scheduler runs without the podex API):
// the open intervals are dropped, unbilled; the outbox keeps what it holds.
// It returns how many marks it dropped.
func (db *DB) StopBilling(ctx context.Context) (int, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE billing_state SET enabled = 0, updated_at = ? WHERE id = 1",
			formatTime(now())); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM billing_marks")
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("stop billing: %w", err)
	}
	return int(n), nil
}

// CloseDueIntervals closes, at at, every open interval that started at
// least length before it: each becomes an outbox row of its whole seconds
// and its mark moves by them, in one transaction. It returns how many rows
// it wrote.
func (db *DB) CloseDueIntervals(ctx context.Context, at time.Time, length time.Duration) (int, error) {
	at = normTime(at)
	n := 0
	err := db.writeTx(ctx, func(tx *wtx) error {
		due, err := queryMarks(ctx, tx, "WHERE since <= ?", formatTime(at.Add(-length)))
		if err != nil {
			return err
		}
		for _, m := range due {
			next, err := closeTx(ctx, tx, m, at, BillReasonInterval)
			if err != nil {
				return err
			}
			if next.Equal(m.Since) {
				continue
			}
			n++
			if _, err := tx.ExecContext(ctx, "UPDATE billing_marks SET since = ? WHERE workspace_id = ?",
				formatTime(next), m.WorkspaceID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("close billing intervals: %w", err)
	}
	return n, nil
}

const markColumns = "workspace_id, user_id, session_id, tier, server_id, container_id, since"

func listMarks(ctx context.Context, q queryer) ([]BillingMark, error) { return queryMarks(ctx, q, "") }

func queryMarks(ctx context.Context, q queryer, where string, args ...any) ([]BillingMark, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+markColumns+" FROM billing_marks "+where+" ORDER BY since, workspace_id", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []BillingMark{}
	for rows.Next() {
		var m BillingMark
		var since string
		if err := rows.Scan(&m.WorkspaceID, &m.UserID, &m.SessionID, &m.Tier, &m.ServerID, &m.ContainerID, &since); err != nil {
			return nil, err
		}
		if m.Since, err = parseTime(since); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ListBillingMarks returns the open intervals, oldest first.
func (db *DB) ListBillingMarks(ctx context.Context) ([]BillingMark, error) {
	out, err := listMarks(ctx, db.read)
	if err != nil {
		return nil, fmt.Errorf("list billing marks: %w", err)
	}
	return out, nil
}

const usageColumns = `seq, event_id, user_id, session_id, workspace_id, tier, server_id, container_id,
	started_at, ended_at, seconds, reason, created_at, attempts, next_attempt_at, solo, last_error, sent_at`

func scanUsage(sc scanner) (UsageRecord, error) {
	var (
		u                            UsageRecord
		start, end, created, nextTry string
		sent                         sql.NullString
	)
	err := sc.Scan(&u.Seq, &u.EventID, &u.UserID, &u.SessionID, &u.WorkspaceID, &u.Tier, &u.ServerID,
		&u.ContainerID, &start, &end, &u.Seconds, &u.Reason, &created, &u.Attempts, &nextTry, &u.Solo,
		&u.LastError, &sent)
	if err != nil {
		return UsageRecord{}, err
	}
	for _, p := range []struct {
		dst *time.Time
		s   string
	}{{&u.Start, start}, {&u.End, end}, {&u.CreatedAt, created}, {&u.NextAttemptAt, nextTry}} {
		if *p.dst, err = parseTime(p.s); err != nil {
			return UsageRecord{}, err
		}
	}
	if u.SentAt, err = parseNullTime(sent); err != nil {
		return UsageRecord{}, err
	}
	return u, nil
}

func (db *DB) queryUsage(ctx context.Context, query string, args ...any) ([]UsageRecord, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT "+usageColumns+" FROM billing_outbox "+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []UsageRecord{}
	for rows.Next() {
		u, err := scanUsage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// DueUsage returns up to limit outbox rows not yet acknowledged whose next
// attempt is due at at, oldest first.
func (db *DB) DueUsage(ctx context.Context, at time.Time, limit int) ([]UsageRecord, error) {
	out, err := db.queryUsage(ctx, "WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
		formatTime(at), max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("due usage: %w", err)
	}
	return out, nil
}

// ListUsage returns outbox rows matching f, newest first.
func (db *DB) ListUsage(ctx context.Context, f UsageFilter) ([]UsageRecord, error) {
	var w filter
	w.eq("workspace_id", f.WorkspaceID)
	w.cond(f.Pending, "sent_at IS NULL")
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultEventLimit
	}
	out, err := db.queryUsage(ctx, w.sql()+" ORDER BY seq DESC LIMIT ?", append(w.args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	return out, nil
}

// seqList is "?, ?, …" and the seqs as arguments.
func seqList(seqs []int64) (string, []any) {
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	return placeholders(len(seqs)), args
}

// MarkUsageSent records that the API acknowledged the rows seqs at at.
// Rows already acknowledged keep their first time.
func (db *DB) MarkUsageSent(ctx context.Context, seqs []int64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	in, args := seqList(seqs)
	err := db.writeTx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, "UPDATE billing_outbox SET sent_at = ?, last_error = '' WHERE sent_at IS NULL AND seq IN ("+in+")",
			append([]any{formatTime(at)}, args...)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark usage sent: %w", err)
	}
	return nil
}

// MarkUsageFailed records a failed send of the rows seqs: one more attempt,
// the error, when to try again, and whether they go alone from now on.
func (db *DB) MarkUsageFailed(ctx context.Context, seqs []int64, why string, next time.Time, solo bool) error {
	if len(seqs) == 0 {
		return nil
	}
	in, args := seqList(seqs)
	err := db.writeTx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `
			UPDATE billing_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
				solo = MAX(solo, ?)
			WHERE sent_at IS NULL AND seq IN (`+in+")",
			append([]any{why, formatTime(next), solo}, args...)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark usage failed: %w", err)
	}
	return nil
}

// PruneUsage deletes acknowledged rows sent before before; pending rows
// are never pruned. It returns how many it deleted.
func (db *DB) PruneUsage(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM billing_outbox WHERE sent_at IS NOT NULL AND sent_at < ?", formatTime(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune usage: %w", err)
	}
	return n, nil
}

// BillingSummary reads the state of billing: switch, open intervals,
// outbox depth and what was acknowledged.
func (db *DB) BillingSummary(ctx context.Context) (BillingSummary, error) {
	var (
		s                     BillingSummary
		oldest, last, lastErr sql.NullString
	)
	err := db.read.QueryRowContext(ctx, `
		SELECT (SELECT enabled FROM billing_state WHERE id = 1),
			(SELECT COUNT(*) FROM billing_marks),
			COUNT(*) FILTER (WHERE sent_at IS NULL),
			COALESCE(SUM(seconds) FILTER (WHERE sent_at IS NULL), 0),
			MIN(created_at) FILTER (WHERE sent_at IS NULL),
			COUNT(*) FILTER (WHERE sent_at IS NULL AND attempts > 0),
			COUNT(*) FILTER (WHERE sent_at IS NOT NULL),
			COALESCE(SUM(seconds) FILTER (WHERE sent_at IS NOT NULL), 0),
			MAX(sent_at)
		FROM billing_outbox`).Scan(&s.Enabled, &s.OpenIntervals, &s.Pending, &s.PendingSeconds, &oldest,
		&s.Failing, &s.Sent, &s.SentSeconds, &last)
	if err != nil {
		return BillingSummary{}, fmt.Errorf("billing summary: %w", err)
	}
	if s.OldestPending, err = parseNullTime(oldest); err != nil {
		return BillingSummary{}, err
	}
	if s.LastSent, err = parseNullTime(last); err != nil {
		return BillingSummary{}, err
	}
	err = db.read.QueryRowContext(ctx, `
		SELECT last_error FROM billing_outbox WHERE sent_at IS NULL AND attempts > 0
		ORDER BY next_attempt_at DESC LIMIT 1`).Scan(&lastErr)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return BillingSummary{}, fmt.Errorf("billing summary: %w", err)
	}
	s.LastError = strings.TrimSpace(lastErr.String)
	return s, nil
}
