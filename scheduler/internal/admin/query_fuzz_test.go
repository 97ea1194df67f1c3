package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/computeapi"
	"berth/scheduler/internal/registry"
)

// filterRegistry records the filters the list routes ask for. The other
// methods are not called by the routes fuzzed (the nil interface panics).
type filterRegistry struct {
	Registry
	mu     sync.Mutex
	events []registry.EventFilter
	homes  []registry.HomeFilter
}

func (r *filterRegistry) ListEvents(_ context.Context, f registry.EventFilter) ([]registry.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, f)
	return nil, nil
}

func (r *filterRegistry) ListHomes(_ context.Context, f registry.HomeFilter) ([]registry.Home, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.homes = append(r.homes, f)
	return nil, nil
}

// FuzzAdminQuery fuzzes the query parsing of GET /admin/events and GET
// /admin/homes (servers.go) with any raw query, through the real router.
// Properties:
//   - events: an absent or empty limit lists the default; a limit that is
//     a whole number 1..1000 lists that many; anything else is a 400 that
//     names limit and reaches no registry; the filters are the query's
//     values as sent;
//   - homes: moving is true only for what strconv.ParseBool reads as true;
//   - no answer is a 5xx.
func FuzzAdminQuery(f *testing.F) {
	for _, q := range []string{
		"limit=10", "limit=0", "limit=1000", "limit=1001", "limit=-1", "limit=+5", "limit=1e3", "limit=99999999999999999999",
		"limit=%00", "limit=10&limit=abc", "limit=", "server_id=ws-1&workspace_id=%27%3B--", "moving=true", "moving=TRUE",
		"moving=1&moving=0", "moving=yes", "server_id=%E2%80%A8", ";", "%zz",
	} {
		f.Add(uint8(0), q)
		f.Add(uint8(1), q)
	}
	f.Fuzz(func(t *testing.T, route uint8, rawQuery string) {
		path := []string{"/admin/events", "/admin/homes"}[route%2]
		reg := &filterRegistry{}
		e := echo.New()
		e.HTTPErrorHandler = computeapi.ErrorHandler
		New(Deps{Token: "admin-token", Registry: reg}).Register(e)
		u := &url.URL{Path: path, RawQuery: rawQuery}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL, r.RequestURI = u, u.RequestURI()
		r.Header.Set("Authorization", "Bearer admin-token")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("%s?%s: %d %s", path, rawQuery, rec.Code, rec.Body.Bytes())
		}
		q := u.Query()
		reg.mu.Lock()
		defer reg.mu.Unlock()
		if path == "/admin/homes" {
			moving, _ := strconv.ParseBool(q.Get("moving"))
			want := registry.HomeFilter{ServerID: q.Get("server_id"), Moving: moving}
			if rec.Code != http.StatusOK || len(reg.homes) != 1 || reg.homes[0] != want {
				t.Fatalf("homes?%s: %d, filters %+v, want %+v", rawQuery, rec.Code, reg.homes, want)
			}
			return
		}
		limit, ok := registry.DefaultEventLimit, true
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			limit, ok = n, err == nil && n >= 1 && n <= maxEvents
		}
		if !ok {
			var ans struct{ Detail string }
			if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &ans) != nil ||
				!strings.Contains(ans.Detail, "limit") || len(reg.events) != 0 {
				t.Fatalf("events?%s: %d %s (%d lists), want a 400 naming limit", rawQuery, rec.Code, rec.Body.Bytes(), len(reg.events))
			}
			return
		}
		want := registry.EventFilter{ServerID: q.Get("server_id"), WorkspaceID: q.Get("workspace_id"), Limit: limit}
		if rec.Code != http.StatusOK || len(reg.events) != 1 || reg.events[0] != want {
			t.Fatalf("events?%s: %d, filters %+v, want %+v", rawQuery, rec.Code, reg.events, want)
		}
	})
}
