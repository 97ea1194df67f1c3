package podexapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
)

// StatusSync tells the API of workspace status changes
// (POST /api/workspaces/{id}/internal/sync-status, service token), on change
// only (§15). Updates are coalesced per workspace (only the latest status of
// each is kept) and sent by Run's one goroutine, so a slow API never holds
// up the scheduler and never receives stale news. An update the API cannot
// take after the client's tries is logged and dropped: the next change
// sends the then current status. Safe for concurrent use.
type StatusSync struct {
	c *Client

	mu      sync.Mutex
	pending map[string]string // workspace id → latest status not yet sent
	order   []string          // ids in the order they first became pending
	wake    chan struct{}
}

type statusUpdate struct{ id, status string }

// NewStatusSync returns the status sync over c.
func NewStatusSync(c *Client) *StatusSync {
	return &StatusSync{c: c, pending: map[string]string{}, wake: make(chan struct{}, 1)}
}

// APIStatus maps a workspace status to what the API's sync-status endpoint
// takes (§7): creating is "starting"; pending_deletion is not reported.
func APIStatus(s fleet.Status) (string, bool) {
	switch s {
	case fleet.StatusRunning, fleet.StatusStopped, fleet.StatusError:
		return string(s), true
	case fleet.StatusCreating:
		return "starting", true
	}
	return "", false
}

// WorkspaceStatus queues a status sync (orchestrator.Notifier).
func (s *StatusSync) WorkspaceStatus(_ context.Context, ws registry.Workspace) {
	status, ok := APIStatus(ws.Status)
	if !ok {
		return
	}
	s.mu.Lock()
	if _, ok := s.pending[ws.ID]; !ok {
		s.order = append(s.order, ws.ID)
	}
	s.pending[ws.ID] = status
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest pending update.
func (s *StatusSync) next() (statusUpdate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return statusUpdate{}, false
	}
	id := s.order[0]
	s.order = s.order[1:]
	u := statusUpdate{id, s.pending[id]}
	delete(s.pending, id)
	return u, true
}

// Run sends queued updates until ctx ends.
func (s *StatusSync) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
		for u, ok := s.next(); ok && ctx.Err() == nil; u, ok = s.next() {
			err := s.c.SyncStatus(ctx, u.id, u.status)
			switch {
			case errors.Is(err, ErrNotFound):
				s.c.log.Debug("API does not know the workspace", "workspace_id", u.id)
			case err != nil:
				s.c.log.Warn("status sync to API failed", "workspace_id", u.id, "status", u.status, "error", err)
			}
		}
	}
}

// SyncStatus posts one workspace's status (§7): {"status": status}.
func (c *Client) SyncStatus(ctx context.Context, workspaceID, status string) error {
	return c.do(ctx, call{op: "workspaces.sync_status", method: http.MethodPost,
		path: "/api/workspaces/" + url.PathEscape(workspaceID) + "/internal/sync-status",
		body: map[string]string{"status": status}, auth: serviceToken})
}
