package admin_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/registry"
)

// workspaceIDs lists the ids of a server's workspaces as the registry has
// them, in the order a list route gives them.
func workspaceIDs(t *testing.T, r *rig, server string, newest bool) []string {
	t.Helper()
	rows, err := r.db.ListWorkspaces(context.Background(), registry.WorkspaceFilter{ServerID: server, NewestFirst: newest})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, w := range rows {
		ids = append(ids, w.ID)
	}
	return ids
}

// walkPages follows next from query (without after) to the last page of
// GET /admin/servers/{server}/workspaces and returns every id listed, in
// order, and the size of each page. Each page must answer the server's
// total.
func walkPages(t *testing.T, r *rig, server string, query url.Values, wantTotal int, hdr map[string]string) (ids []string, sizes []int) {
	t.Helper()
	ids = []string{}
	for range 200 {
		res := r.call("GET", "/admin/servers/"+server+"/workspaces?"+query.Encode(), nil, hdr)
		wantStatus(t, res, 200)
		var p admin.WorkspacePage
		res.decode(t, &p)
		if p.ServerID != server || p.TotalCount != wantTotal {
			t.Fatalf("page %d: server %q total %d, want %q and %d", len(sizes)+1, p.ServerID, p.TotalCount, server, wantTotal)
		}
		sizes = append(sizes, len(p.Workspaces))
		for _, w := range p.Workspaces {
			ids = append(ids, w.ID)
		}
		if p.Next == nil {
			return ids, sizes
		}
		query.Set("after", *p.Next)
	}
	t.Fatalf("no last page after 200 pages")
	return nil, nil
}

func TestServerWorkspacesPaging(t *testing.T) {
	r := newRig(t, "ws-1", "ws-2")
	const n = 23
	for i := range n {
		r.reserve(fmt.Sprintf("w%02d", (i*5)%n), "ws-1", 0.1, 64)
	}
	r.reserve("other", "ws-2", 0.1, 64)
	bearer := map[string]string{"Authorization": "Bearer " + adminToken}

	tests := []struct {
		name      string
		limit     string // "" = the default
		order     string
		wantSizes []int
	}{
		{"default limit", "", "", []int{n}},
		{"one by one", "1", "", slices.Repeat([]int{1}, n)},
		{"pages of 5", "5", "oldest", []int{5, 5, 5, 5, 3}},
		{"pages of 5, newest first", "5", "newest", []int{5, 5, 5, 5, 3}},
		{"exactly the total", "23", "newest", []int{n}},
		{"the maximum", "1000", "", []int{n}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{}
			if tt.limit != "" {
				q.Set("limit", tt.limit)
			}
			if tt.order != "" {
				q.Set("order", tt.order)
			}
			got, sizes := walkPages(t, r, "ws-1", q, n, bearer)
			if diff := cmp.Diff(workspaceIDs(t, r, "ws-1", tt.order == "newest"), got); diff != "" {
				t.Errorf("ids over every page (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSizes, sizes); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("the panel's session pages too", func(t *testing.T) {
		got, _ := walkPages(t, r, "ws-1", url.Values{"limit": {"10"}, "order": {"newest"}}, n, r.session().cookie())
		if diff := cmp.Diff(workspaceIDs(t, r, "ws-1", true), got); diff != "" {
			t.Errorf("ids over every page (-want +got):\n%s", diff)
		}
	})

	t.Run("a cursor outlives its row", func(t *testing.T) {
		var first admin.WorkspacePage
		r.admin("GET", "/admin/servers/ws-1/workspaces?limit=3", nil).decode(t, &first)
		if first.Next == nil {
			t.Fatal("first page of 3: no next")
		}
		last := first.Workspaces[2].ID
		if err := r.db.DeleteWorkspace(context.Background(), last); err != nil {
			t.Fatal(err)
		}
		var second admin.WorkspacePage
		r.admin("GET", "/admin/servers/ws-1/workspaces?limit=3&after="+url.QueryEscape(*first.Next), nil).decode(t, &second)
		all := workspaceIDs(t, r, "ws-1", false)
		var got []string
		for _, w := range second.Workspaces {
			got = append(got, w.ID)
		}
		if diff := cmp.Diff(all[2:5], got); diff != "" || second.TotalCount != n-1 {
			t.Errorf("page after a deleted row (-want +got):\n%s (total %d, want %d)", diff, second.TotalCount, n-1)
		}
	})
}

func TestServerWorkspacesBadQuery(t *testing.T) {
	r := newRig(t, "ws-1")
	r.reserve("w1", "ws-1", 0.1, 64)
	tests := []struct {
		name, query string
		wantStatus  int
		wantDetail  string // in the detail of an error
	}{
		{"limit 0", "limit=0", 400, `limit "0": want a whole number from 1 to 1000`},
		{"negative limit", "limit=-1", 400, `limit "-1": want a whole number from 1 to 1000`},
		{"limit over the maximum", "limit=1001", 400, `limit "1001": want a whole number from 1 to 1000`},
		{"limit not a number", "limit=ten", 400, `limit "ten": want a whole number from 1 to 1000`},
		{"limit not whole", "limit=2.5", 400, `limit "2.5"`},
		{"limit 1", "limit=1", 200, ""},
		{"limit 1000", "limit=1000", 200, ""},
		{"order unknown", "order=sideways", 400, `order "sideways": want oldest or newest`},
		{"after not base64", "after=%25%25", 400, `after "%%": not a cursor of a workspace list`},
		{"after without an id", "after=" + b64("2026-01-01T00:00:00Z"), 400, "not a cursor"},
		{"after with an empty id", "after=" + b64("2026-01-01T00:00:00Z "), 400, "not a cursor"},
		{"after with a bad time", "after=" + b64("yesterday w1"), 400, "not a cursor"},
		{"after in the future", "after=" + b64("2999-01-01T00:00:00Z w1"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.admin("GET", "/admin/servers/ws-1/workspaces?"+tt.query, nil)
			wantStatus(t, res, tt.wantStatus)
			if tt.wantDetail != "" && !strings.Contains(res.detail(t), tt.wantDetail) {
				t.Errorf("detail %q, want it to contain %q", res.detail(t), tt.wantDetail)
			}
		})
	}
	t.Run("unknown server", func(t *testing.T) {
		wantStatus(t, r.admin("GET", "/admin/servers/nope/workspaces?limit=0", nil), 400)
		wantStatus(t, r.admin("GET", "/admin/servers/nope/workspaces?limit=5", nil), 404)
	})
}

// b64 is s as a cursor-shaped parameter: base64url without padding.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// The panel's stream carries each server's newest page and the cursor
// that continues it; the cluster totals are counts of every row.
func TestPanelWorkspacePages(t *testing.T) {
	r := newRig(t, "ws-1", "ws-2")
	const n = 105 // more than a page
	for i := range n {
		r.reserve(fmt.Sprintf("w%03d", i), "ws-1", 0.01, 16)
	}
	r.reserve("solo", "ws-2", 0.1, 64)
	s := r.session()
	o := waitFor(t, sseEvents(t, r.url, s), 2*time.Second, "the first snapshot", func(admin.Overview) bool { return true })

	newest := workspaceIDs(t, r, "ws-1", true)
	var shown []string
	for _, w := range o.Workspaces["ws-1"] {
		shown = append(shown, w.ID)
	}
	if diff := cmp.Diff(newest[:100], shown); diff != "" {
		t.Errorf("ws-1's workspaces on the stream (-want +got):\n%s", diff)
	}
	if got := o.Workspaces["ws-2"]; len(got) != 1 || got[0].ID != "solo" {
		t.Errorf("ws-2's workspaces on the stream: got %+v, want solo", got)
	}
	if _, ok := o.WorkspacesNext["ws-2"]; ok || o.WorkspacesNext["ws-1"] == "" {
		t.Errorf("workspaces_next = %v, want one for ws-1 only", o.WorkspacesNext)
	}
	if o.Cluster.Workspaces.Total != n+1 || o.Cluster.Workspaces.By["creating"] != n+1 {
		t.Errorf("cluster workspaces = %+v, want %d creating", o.Cluster.Workspaces, n+1)
	}

	// The panel's Next: the route with the stream's cursor, newest first.
	q := url.Values{"order": {"newest"}, "after": {o.WorkspacesNext["ws-1"]}}
	rest, sizes := walkPages(t, r, "ws-1", q, n, s.cookie())
	if diff := cmp.Diff(newest[100:], rest); diff != "" || !cmp.Equal(sizes, []int{n - 100}) {
		t.Errorf("pages after the stream's (-want +got):\n%s (sizes %v)", diff, sizes)
	}
}
