// Package podexapi makes the scheduler's reverse calls to the podex API
// service (contract §7), when COMPUTE_API_BASE_URL is set. Today: workspace
// status sync, sent on change only. Calls are queued and sent by one
// goroutine so a slow API never holds up the scheduler; a full queue drops
// the oldest news rather than block.
package podexapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
)

// Client calls the podex API. Run owns its worker.
type Client struct {
	base  string
	token string
	http  *http.Client
	log   hclog.Logger
	queue chan statusUpdate
}

type statusUpdate struct{ id, status string }

// New returns a client of the API at base (e.g. http://api:3001).
func New(base, token string, log hclog.Logger) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, log: log,
		http: &http.Client{Timeout: 10 * time.Second}, queue: make(chan statusUpdate, 1024)}
}

// APIStatus maps a workspace status to what the API's sync-status endpoint
// takes (§7): creating is "starting"; pending_deletion is not reported.
func APIStatus(s registry.Status) (string, bool) {
	switch s {
	case registry.StatusRunning, registry.StatusStopped, registry.StatusError:
		return string(s), true
	case registry.StatusCreating:
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
	select {
	case c.queue <- statusUpdate{ws.ID, status}:
	default:
		c.log.Warn("status sync queue full; dropping", "workspace_id", ws.ID)
	}
}

// Run sends queued updates until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-c.queue:
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
