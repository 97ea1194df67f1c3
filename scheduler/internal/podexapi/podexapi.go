package podexapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
)

// Client calls the podex API. Run owns its worker.
type Client struct {
	base  string
	token string
	http  *http.Client
	log   hclog.Logger

	mu      sync.Mutex
	pending map[string]string // workspace id → latest status not yet sent
	order   []string          // ids in the order they first became pending
	wake    chan struct{}
}

type statusUpdate struct{ id, status string }

// New returns a client of the API at base (e.g. http://api:3001).
func New(base, token string, log hclog.Logger) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, log: log,
		http: &http.Client{Timeout: 10 * time.Second}, pending: map[string]string{}, wake: make(chan struct{}, 1)}
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
func (c *Client) WorkspaceStatus(_ context.Context, ws registry.Workspace) {
	status, ok := APIStatus(ws.Status)
	if !ok {
		return
	}
	c.mu.Lock()
	if _, ok := c.pending[ws.ID]; !ok {
		c.order = append(c.order, ws.ID)
	}
	c.pending[ws.ID] = status
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest pending update.
func (c *Client) next() (statusUpdate, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.order) == 0 {
		return statusUpdate{}, false
	}
	id := c.order[0]
	c.order = c.order[1:]
	u := statusUpdate{id, c.pending[id]}
	delete(c.pending, id)
	return u, true
}

// Run sends queued updates until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		}
		for u, ok := c.next(); ok && ctx.Err() == nil; u, ok = c.next() {
			if err := c.syncStatus(ctx, u); err != nil {
				c.log.Warn("status sync to API failed", "workspace_id", u.id, "error", err)
			}
		}
	}
}

func (c *Client) syncStatus(ctx context.Context, u statusUpdate) error {
	body, _ := json.Marshal(map[string]string{"status": u.status})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.base+"/api/workspaces/"+url.PathEscape(u.id)+"/internal/sync-status", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Internal-Service-Token", c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		c.log.Debug("API does not know the workspace", "workspace_id", u.id)
	case resp.StatusCode >= 300:
		return fmt.Errorf("API answered %s", resp.Status)
	}
	return nil
}
