package admin

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/registry"
)

// No admin view loads every workspace. Lists go page by page through the
// registry's keyset paging (registry.WorkspaceFilter): GET
// /admin/servers/{id}/workspaces takes ?limit=, ?after= and ?order= and
// answers the after of the next page as "next"; the panel's stream carries
// each server's newest page and the panel asks that route for the others.
// Totals come from COUNT queries.

// Page sizes of the workspace lists. The panel pages with the default, so
// its pages are as long as the first one the stream shows.
const (
	defaultWorkspacePage = maxPanelWorkspaces
	maxWorkspacePage     = 1000
)

// workspacePaging reads a list's ?limit= (default defaultWorkspacePage),
// ?after= (a cursor a previous page answered as next) and ?order= (oldest,
// the default, or newest) into f.
func workspacePaging(c echo.Context, f *registry.WorkspaceFilter) error {
	f.Limit = defaultWorkspacePage
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWorkspacePage {
			return failf(ErrInvalid, "limit %q: want a whole number from 1 to %d", v, maxWorkspacePage)
		}
		f.Limit = n
	}
	switch v := c.QueryParam("order"); v {
	case "", "oldest":
	case "newest":
		f.NewestFirst = true
	default:
		return failf(ErrInvalid, "order %q: want oldest or newest", v)
	}
	if v := c.QueryParam("after"); v != "" {
		cur, ok := decodeCursor(v)
		if !ok {
			return failf(ErrInvalid, "after %q: not a cursor of a workspace list: give the next value of the page before", v)
		}
		f.After = cur
	}
	return nil
}

// encodeCursor writes a position in the workspace order as an opaque,
// URL-safe string: base64url (no padding) of the creation time (RFC 3339
// in UTC, to the nanosecond), a space, and the id.
func encodeCursor(c registry.WorkspaceCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.CreatedAt.UTC().Format(time.RFC3339Nano) + " " + c.ID))
}

// decodeCursor reads encodeCursor's string; ok is false for anything else.
func decodeCursor(s string) (registry.WorkspaceCursor, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return registry.WorkspaceCursor{}, false
	}
	at, id, found := strings.Cut(string(raw), " ")
	if !found || id == "" {
		return registry.WorkspaceCursor{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return registry.WorkspaceCursor{}, false
	}
	return registry.WorkspaceCursor{CreatedAt: t, ID: id}, true
}

// workspacePage lists the page f selects (f.Limit > 0) and the cursor of
// the page after it, nil when there is none. It reads one row more than
// the page to know.
func (a *API) workspacePage(ctx context.Context, f registry.WorkspaceFilter) ([]Workspace, *string, error) {
	size := f.Limit
	f.Limit++
	rows, err := a.d.Registry.ListWorkspaces(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	var next *string
	if len(rows) > size {
		rows = rows[:size]
		c := encodeCursor(rows[size-1].Cursor())
		next = &c
	}
	out := make([]Workspace, len(rows))
	for i, w := range rows {
		out[i] = a.workspaceView(w)
	}
	return out, next, nil
}

// workspaceView is w as the admin API shows it, with the time it is
// stopped if nobody uses it.
func (a *API) workspaceView(w registry.Workspace) Workspace {
	v := workspaceOf(w)
	if at, ok := a.d.Fleet.IdleStopAt(w); ok {
		v.IdleStopAt = timestamp(at)
	}
	return v
}
