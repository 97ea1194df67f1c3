package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/registry"
)

// GET /admin/homes lists where every home directory is, deleted
// workspaces' included, and the moves under way; the panel's overview
// shows the moves.
func TestHomes(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "ws-1", "ws-2")
	r.reserve("w1", "ws-1", 1, 1024)
	r.reserve("w2", "ws-2", 1, 1024)
	if err := r.db.DeleteWorkspace(ctx, "w2"); err != nil { // DELETE keeps the home
		t.Fatal(err)
	}
	if err := r.db.BeginHomeMove(ctx, "w1", "ws-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.db.AddEvent(ctx, registry.Event{Kind: "home.move.progress", WorkspaceID: "w1", ServerID: "ws-2",
		Message: "copied 1.0 MiB of 2.0 MiB"}); err != nil {
		t.Fatal(err)
	}

	type list struct {
		Homes []admin.Home `json:"homes"`
	}
	pick := func(hs []admin.Home) []string {
		out := []string{}
		for _, h := range hs {
			out = append(out, h.WorkspaceID+"@"+h.ServerID+">"+h.MovingTo)
		}
		return out
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"w1@ws-1>ws-2", "w2@ws-2>"}},
		{"?server_id=ws-2", []string{"w2@ws-2>"}},
		{"?moving=true", []string{"w1@ws-1>ws-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			res := r.admin(http.MethodGet, "/admin/homes"+tt.query, nil)
			wantStatus(t, res, http.StatusOK)
			var got list
			res.decode(t, &got)
			if diff := cmp.Diff(tt.want, pick(got.Homes)); diff != "" {
				t.Errorf("homes (-want +got):\n%s", diff)
			}
		})
	}
	if res := r.call(http.MethodGet, "/admin/homes", nil, nil); res.status != http.StatusUnauthorized {
		t.Errorf("without the admin token: %d, want 401", res.status)
	}

	page := r.admin(http.MethodGet, "/admin/ui", nil)
	wantStatus(t, page, http.StatusOK)
	want := `"moves":[{"workspace_id":"w1","from":"ws-1","to":"ws-2","progress":"copied 1.0 MiB of 2.0 MiB"`
	if !strings.Contains(string(page.body), want) {
		t.Errorf("the panel's state lacks the move %s:\n%s", want, page.body)
	}
}
