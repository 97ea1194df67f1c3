package podexapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
)

type call struct{ path, token, status string }

func TestWorkspaceStatusSync(t *testing.T) {
	calls := make(chan call, 10)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Status string }
		json.NewDecoder(r.Body).Decode(&body)
		calls <- call{r.URL.Path, r.Header.Get("X-Internal-Service-Token"), body.Status}
	}))
	defer api.Close()
	c := New(api.URL+"/", "svc-token", hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)

	tests := []struct {
		status fleet.Status
		want   string // "" = not sent
	}{
		{fleet.StatusPendingDeletion, ""},
		{fleet.StatusError, "error"},
		{fleet.StatusCreating, "starting"},
		{fleet.StatusStopped, "stopped"},
	}
	for _, tt := range tests {
		c.WorkspaceStatus(ctx, registry.Workspace{ID: "w-" + string(tt.status), Status: tt.status})
	}
	for _, tt := range tests {
		if tt.want == "" {
			continue
		}
		select {
		case got := <-calls:
			want := call{"/api/workspaces/w-" + string(tt.status) + "/internal/sync-status", "svc-token", tt.want}
			if got != want {
				t.Errorf("call = %+v, want %+v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no call for %s", tt.status)
		}
	}
	select {
	case extra := <-calls:
		t.Errorf("unexpected extra call %+v", extra)
	default:
	}
}

// Updates queued while the API is slow collapse to the latest per workspace.
func TestWorkspaceStatusCoalesces(t *testing.T) {
	c := New("http://unused", "t", hclog.NewNullLogger())
	for _, s := range []fleet.Status{fleet.StatusRunning, fleet.StatusStopped, fleet.StatusError} {
		c.WorkspaceStatus(context.Background(), registry.Workspace{ID: "a", Status: s})
	}
	c.WorkspaceStatus(context.Background(), registry.Workspace{ID: "b", Status: fleet.StatusRunning})
	var got []statusUpdate
	for u, ok := c.next(); ok; u, ok = c.next() {
		got = append(got, u)
	}
	want := []statusUpdate{{"a", "error"}, {"b", "running"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("pending = %v, want %v", got, want)
	}
}
