package admin

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/registry"
)

// Billing is what the admin views read of billing (the registry); nil in
// Deps when billing is off (no podex API).
type Billing interface {
	BillingSummary(ctx context.Context) (registry.BillingSummary, error)
	ListUsage(ctx context.Context, f registry.UsageFilter) ([]registry.UsageRecord, error)
	ListBillingMarks(ctx context.Context) ([]registry.BillingMark, error)
}

// BillingSummary is the state of billing: the open intervals and the usage
// outbox (depth = pending).
type BillingSummary struct {
	Enabled        bool    `json:"enabled"`
	OpenIntervals  int     `json:"open_intervals"`  // running workspaces being billed
	Pending        int     `json:"outbox_pending"`  // events not yet acknowledged by the podex API
	PendingSeconds int64   `json:"pending_seconds"` // the compute seconds they carry
	OldestPending  *string `json:"oldest_pending_at"`
	Failing        int     `json:"failing"` // pending events that failed at least once
	LastError      string  `json:"last_error"`
	Sent           int     `json:"sent"` // acknowledged events still kept
	SentSeconds    int64   `json:"sent_seconds"`
	LastSent       *string `json:"last_sent_at"`
}

// BillingInterval is an open interval: a running workspace billed since.
type BillingInterval struct {
	WorkspaceID string  `json:"workspace_id"`
	UserID      string  `json:"user_id"`
	Tier        string  `json:"tier"`
	ServerID    string  `json:"server_id"`
	Since       *string `json:"since"`
}

// UsageEvent is one outbox row.
type UsageEvent struct {
	ID          string  `json:"id"`
	UserID      string  `json:"user_id"`
	SessionID   string  `json:"session_id"`
	WorkspaceID string  `json:"workspace_id"`
	Tier        string  `json:"tier"`
	ServerID    string  `json:"server_id"`
	ContainerID string  `json:"container_id"`
	Seconds     int64   `json:"seconds"`
	Start       *string `json:"start"`
	End         *string `json:"end"`
	Reason      string  `json:"reason"`
	Attempts    int     `json:"attempts"`
	NextAttempt *string `json:"next_attempt_at"`
	LastError   string  `json:"last_error"`
	SentAt      *string `json:"sent_at"` // null while pending
}

// BillingReport is GET /admin/billing.
type BillingReport struct {
	Summary       BillingSummary    `json:"summary"`
	OpenIntervals []BillingInterval `json:"open_intervals"`
	Events        []UsageEvent      `json:"events"` // newest first
}

func summaryOf(s registry.BillingSummary) BillingSummary {
	return BillingSummary{Enabled: s.Enabled, OpenIntervals: s.OpenIntervals, Pending: s.Pending,
		PendingSeconds: s.PendingSeconds, OldestPending: timestamp(s.OldestPending), Failing: s.Failing,
		LastError: s.LastError, Sent: s.Sent, SentSeconds: s.SentSeconds, LastSent: timestamp(s.LastSent)}
}

// billingSummary is the panel's billing card; nil when billing is off.
func (a *API) billingSummary(ctx context.Context) (*BillingSummary, error) {
	if a.d.Billing == nil {
		return nil, nil
	}
	s, err := a.d.Billing.BillingSummary(ctx)
	if err != nil {
		return nil, err
	}
	out := summaryOf(s)
	return &out, nil
}

// billing is GET /admin/billing[?workspace_id=&pending=true&limit=]: the
// summary, the open intervals and the outbox, newest first. 404 when
// billing is off.
func (a *API) billing(c echo.Context) error {
	if a.d.Billing == nil {
		return echo.NewHTTPError(http.StatusNotFound, "billing is off: the scheduler runs without the podex API (COMPUTE_API_BASE_URL)")
	}
	ctx := c.Request().Context()
	f := registry.UsageFilter{WorkspaceID: c.QueryParam("workspace_id"), Pending: c.QueryParam("pending") == "true"}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return echo.NewHTTPError(http.StatusBadRequest, "limit: want 1 to 10000")
		}
		f.Limit = n
	}
	s, err := a.d.Billing.BillingSummary(ctx)
	if err != nil {
		return err
	}
	marks, err := a.d.Billing.ListBillingMarks(ctx)
	if err != nil {
		return err
	}
	rows, err := a.d.Billing.ListUsage(ctx, f)
	if err != nil {
		return err
	}
	out := BillingReport{Summary: summaryOf(s), OpenIntervals: make([]BillingInterval, 0, len(marks)),
		Events: make([]UsageEvent, 0, len(rows))}
	for _, m := range marks {
		if f.WorkspaceID != "" && m.WorkspaceID != f.WorkspaceID {
			continue
		}
		out.OpenIntervals = append(out.OpenIntervals, BillingInterval{WorkspaceID: m.WorkspaceID, UserID: m.UserID,
			Tier: m.Tier, ServerID: m.ServerID, Since: exactTimestamp(m.Since)})
	}
	for _, u := range rows {
		out.Events = append(out.Events, UsageEvent{ID: u.EventID, UserID: u.UserID, SessionID: u.SessionID,
			WorkspaceID: u.WorkspaceID, Tier: u.Tier, ServerID: u.ServerID, ContainerID: u.ContainerID,
			Seconds: u.Seconds, Start: exactTimestamp(u.Start), End: exactTimestamp(u.End), Reason: u.Reason,
			Attempts: u.Attempts, NextAttempt: timestamp(u.NextAttemptAt), LastError: u.LastError,
			SentAt: timestamp(u.SentAt)})
	}
	return c.JSON(http.StatusOK, out)
}

// exactTimestamp is t in RFC 3339 UTC with its fraction of a second (the
// bounds of billed intervals), or nil when t is zero.
func exactTimestamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}
