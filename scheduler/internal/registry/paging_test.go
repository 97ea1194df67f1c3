package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
)

// pagingRow is a workspace of the paging tests as inserted.
type pagingRow struct {
	id, user, server string
	status           fleet.Status
	created          time.Time
}

// seedPaging inserts n workspaces on servers a and b. Creation times come
// in threes (so the id breaks ties) and ids are not in creation order.
func seedPaging(t *testing.T, db *DB, n int) []pagingRow {
	t.Helper()
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "a"})
	mustCreateServer(t, db, Server{ID: "b"})
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	statuses := []fleet.Status{fleet.StatusRunning, fleet.StatusStopped, fleet.StatusCreating}
	rows := make([]pagingRow, n)
	for i := range rows {
		r := pagingRow{id: fmt.Sprintf("w%02d", (i*7)%n), user: fmt.Sprintf("u%d", i%2), server: []string{"a", "b", "a"}[i%3],
			status: statuses[i%len(statuses)], created: base.Add(time.Duration(i/3) * time.Second)}
		mustReserve(t, db, Workspace{ID: r.id, UserID: r.user, ServerID: r.server, CreatedAt: r.created}, Limits{})
		if _, err := db.SetWorkspaceStatus(ctx, r.id, r.status, ""); err != nil {
			t.Fatal(err)
		}
		rows[i] = r
	}
	return rows
}

// ordered is the ids of the rows keep selects, in list order: by creation
// time then id, reversed when newest.
func ordered(rows []pagingRow, keep func(pagingRow) bool, newest bool) []string {
	var sel []pagingRow
	for _, r := range rows {
		if keep(r) {
			sel = append(sel, r)
		}
	}
	slices.SortFunc(sel, func(x, y pagingRow) int {
		if c := x.created.Compare(y.created); c != 0 {
			return c
		}
		return strings.Compare(x.id, y.id)
	})
	ids := []string{}
	for _, r := range sel {
		ids = append(ids, r.id)
	}
	if newest {
		slices.Reverse(ids)
	}
	return ids
}

// walk lists every page of f (f.Limit > 0) and returns the ids in the order
// listed and the size of each page.
func walk(t *testing.T, db *DB, f WorkspaceFilter) (ids []string, sizes []int) {
	t.Helper()
	ids = []string{}
	for range 1000 {
		page, err := db.ListWorkspaces(context.Background(), f)
		if err != nil {
			t.Fatalf("ListWorkspaces(%+v): %v", f, err)
		}
		sizes = append(sizes, len(page))
		for _, w := range page {
			ids = append(ids, w.ID)
		}
		if len(page) < f.Limit {
			return ids, sizes
		}
		f.After = page[len(page)-1].Cursor()
	}
	t.Fatalf("no end after 1000 pages of %+v", f)
	return nil, nil
}

func TestListWorkspacesPaging(t *testing.T) {
	db, _ := openTestDB(t)
	const n = 23
	rows := seedPaging(t, db, n)
	all := func(pagingRow) bool { return true }
	tests := []struct {
		name   string
		filter WorkspaceFilter // without Limit
		keep   func(pagingRow) bool
	}{
		{"all", WorkspaceFilter{}, all},
		{"by server", WorkspaceFilter{ServerID: "a"}, func(r pagingRow) bool { return r.server == "a" }},
		{"by status", WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusRunning, fleet.StatusStopped}},
			func(r pagingRow) bool { return r.status != fleet.StatusCreating }},
		{"by user and server", WorkspaceFilter{UserID: "u1", ServerID: "b"},
			func(r pagingRow) bool { return r.user == "u1" && r.server == "b" }},
		{"nothing matches", WorkspaceFilter{ServerID: "nope"}, func(pagingRow) bool { return false }},
	}
	for _, tt := range tests {
		for _, newest := range []bool{false, true} {
			want := ordered(rows, tt.keep, newest)
			for _, limit := range []int{1, 4, 5, n, n + 1, 1000} {
				t.Run(fmt.Sprintf("%s/newest=%v/limit=%d", tt.name, newest, limit), func(t *testing.T) {
					f := tt.filter
					f.Limit, f.NewestFirst = limit, newest
					got, sizes := walk(t, db, f)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("rows of every page (-want +got):\n%s", diff)
					}
					for i, size := range sizes[:len(sizes)-1] {
						if size != limit {
							t.Errorf("page %d of %d: got %d rows, want %d", i+1, len(sizes), size, limit)
						}
					}
					if last := sizes[len(sizes)-1]; last >= limit {
						t.Errorf("last page: got %d rows, want fewer than %d", last, limit)
					}
				})
			}
			t.Run(fmt.Sprintf("%s/newest=%v/no limit", tt.name, newest), func(t *testing.T) {
				f := tt.filter
				f.NewestFirst = newest
				list, err := db.ListWorkspaces(context.Background(), f)
				if err != nil {
					t.Fatal(err)
				}
				got := []string{}
				for _, w := range list {
					got = append(got, w.ID)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("ListWorkspaces without a limit (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestListWorkspacesPagingWhileRowsChange walks pages while rows are added
// and deleted: a row that exists for the whole walk is listed exactly once,
// a row deleted before its page is never listed, a row added past the
// cursor is listed once, and the cursor of a deleted row still works.
func TestListWorkspacesPagingWhileRowsChange(t *testing.T) {
	ctx := context.Background()
	for _, newest := range []bool{false, true} {
		t.Run(fmt.Sprintf("newest=%v", newest), func(t *testing.T) {
			db, _ := openTestDB(t)
			rows := seedPaging(t, db, 12)
			order := ordered(rows, func(pagingRow) bool { return true }, newest)
			f := WorkspaceFilter{Limit: 4, NewestFirst: newest}
			first, err := db.ListWorkspaces(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			// The cursor's own row and a row of a later page go; a row
			// goes in before the cursor (never listed) and one at the far
			// end of the order (listed on a later page).
			for _, id := range []string{first[3].ID, order[9]} {
				if err := db.DeleteWorkspace(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			early, late := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			if newest {
				early, late = late, early
			}
			mustReserve(t, db, Workspace{ID: "before-cursor", UserID: "u", ServerID: "a", CreatedAt: early}, Limits{})
			mustReserve(t, db, Workspace{ID: "at-the-end", UserID: "u", ServerID: "b", CreatedAt: late}, Limits{})

			f.After = first[3].Cursor()
			rest, _ := walk(t, db, f)
			got := []string{}
			for _, w := range first {
				got = append(got, w.ID)
			}
			got = append(got, rest...)
			want := append(append(slices.Clone(order[:9]), order[10:]...), "at-the-end")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rows listed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestListWorkspacesPageFromIndex checks that a page is read from an index
// in list order: no sort of the whole selection (a temp b-tree), and a
// search from the cursor rather than a scan from the start.
func TestListWorkspacesPageFromIndex(t *testing.T) {
	db, _ := openTestDB(t)
	after := WorkspaceCursor{CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ID: "w1"}
	tests := []struct {
		name   string
		filter WorkspaceFilter
		want   string // in the plan
	}{
		{"first page", WorkspaceFilter{Limit: 100}, "SCAN workspaces USING INDEX workspaces_created"},
		{"next page", WorkspaceFilter{Limit: 100, After: after},
			"SEARCH workspaces USING INDEX workspaces_created ((created_at,id)>(?,?))"},
		{"next page, newest first", WorkspaceFilter{Limit: 100, After: after, NewestFirst: true},
			"SEARCH workspaces USING INDEX workspaces_created ((created_at,id)<(?,?))"},
		{"server's first page", WorkspaceFilter{ServerID: "a", Limit: 100, NewestFirst: true},
			"SEARCH workspaces USING INDEX workspaces_server_created (server_id=?)"},
		{"server's next page", WorkspaceFilter{ServerID: "a", Limit: 100, After: after},
			"SEARCH workspaces USING INDEX workspaces_server_created (server_id=? AND (created_at,id)>(?,?))"},
		{"server's next page, newest first", WorkspaceFilter{ServerID: "a", Limit: 100, After: after, NewestFirst: true},
			"SEARCH workspaces USING INDEX workspaces_server_created (server_id=? AND (created_at,id)<(?,?))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, args, err := listWorkspacesQuery(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := db.read.Query("EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if want := []string{tt.want}; !cmp.Equal(want, plan) {
				t.Errorf("query plan: got %q, want %q", plan, want)
			}
		})
	}
}

func TestListWorkspacesNegativeLimit(t *testing.T) {
	db, _ := openTestDB(t)
	if _, err := db.ListWorkspaces(context.Background(), WorkspaceFilter{Limit: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("ListWorkspaces with limit -1: got %v, want ErrInvalid", err)
	}
}

func TestCountWorkspaces(t *testing.T) {
	db, _ := openTestDB(t)
	rows := seedPaging(t, db, 23)
	count := func(keep func(pagingRow) bool) int { return len(ordered(rows, keep, false)) }
	tests := []struct {
		name   string
		filter WorkspaceFilter
		want   int
	}{
		{"all", WorkspaceFilter{}, 23},
		{"by server", WorkspaceFilter{ServerID: "b"}, count(func(r pagingRow) bool { return r.server == "b" })},
		{"by status", WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusRunning}},
			count(func(r pagingRow) bool { return r.status == fleet.StatusRunning })},
		{"by user", WorkspaceFilter{UserID: "u0"}, count(func(r pagingRow) bool { return r.user == "u0" })},
		{"paging is ignored", WorkspaceFilter{ServerID: "a", Limit: 2, After: rows[5].cursor(), NewestFirst: true},
			count(func(r pagingRow) bool { return r.server == "a" })},
		{"no match", WorkspaceFilter{ServerID: "nope"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.CountWorkspaces(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("CountWorkspaces(%+v): got %d, want %d", tt.filter, got, tt.want)
			}
		})
	}
}

func (r pagingRow) cursor() WorkspaceCursor { return WorkspaceCursor{CreatedAt: r.created, ID: r.id} }
