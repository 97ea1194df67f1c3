package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// 50 simultaneous creates against hosts with room for 10 starters each:
// exactly 20 are placed and 30 refused, and what really runs on the hosts
// matches the registry one for one, no host over its room (registry
// reservations are one write transaction, DESIGN §2).
func TestPlacementConcurrentCreates(t *testing.T) {
	needCluster(t)
	const (
		perHost  = 10
		attempts = 50
	)
	// Starter is 2 CPU / 4096 MB / 20 GB / 100 Mbps: CPU and memory bind
	// at 10 per host (disk has room for 50, bandwidth's default for 10).
	room := seed{CPU: 2 * perHost, MemoryMB: 4096 * perHost, DiskGB: 1000, Region: "local"}
	s := startScheduler(t, "spread", map[string]seed{hosts[0].id: room, hosts[1].id: room})
	k := s.api.as(uniqueID("e2e-user"))
	session := uniqueID("e2e-sess")
	sessionLabel := "label=podex.session_id=" + session

	ids := make([]string, attempts)
	for i := range ids {
		ids[i] = uniqueID("e2e-conc")
	}
	t.Cleanup(func() { deleteAll(t, k, ids, sessionLabel) })

	type result struct {
		status int
		detail string
		ws     info
		err    error
	}
	results := make([]result, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := k.tryDo(http.MethodPost, "/workspaces", createBody(session, id, starter()))
			res := result{status: r.status, detail: r.detail(), err: err}
			if err == nil && r.status == http.StatusCreated {
				res.err = json.Unmarshal(r.body, &res.ws)
			}
			results[i] = res
		}()
	}
	close(start)
	wg.Wait()

	counts := map[int]int{}
	placed := map[string]string{} // workspace id → server id, from the 201s
	for i, r := range results {
		if r.err != nil {
			t.Errorf("create %s: %v", ids[i], r.err)
			continue
		}
		counts[r.status]++
		switch r.status {
		case http.StatusCreated:
			if r.ws.ID != ids[i] || r.ws.Status != "running" || r.ws.ServerID == "" {
				t.Errorf("create %s: 201 with %+v, want it running on a server", ids[i], r.ws)
			}
			placed[r.ws.ID] = r.ws.ServerID
		case http.StatusServiceUnavailable:
			if r.detail != "No server has sufficient resources" {
				t.Errorf("create %s: 503 %q, want No server has sufficient resources", ids[i], r.detail)
			}
		default:
			t.Errorf("create %s: status %d (%s), want 201 or 503", ids[i], r.status, r.detail)
		}
	}
	if want := map[int]int{201: 2 * perHost, 503: attempts - 2*perHost}; !cmp.Equal(counts, want) {
		t.Fatalf("statuses of %d simultaneous creates: got %v, want %v", attempts, counts, want)
	}

	// The registry: the caller's list for the session.
	r := k.do(t, http.MethodGet, "/workspaces?session_id="+session, nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: got %s, want 200", r)
	}
	var listed []info
	r.into(t, &listed)
	registry := map[string]string{}
	for _, ws := range listed {
		if ws.Status != "running" {
			t.Errorf("registry: %s is %q, want running", ws.ID, ws.Status)
		}
		registry[ws.ID] = ws.ServerID
	}
	if diff := cmp.Diff(placed, registry); diff != "" {
		t.Errorf("registry vs the 201 answers, id → server (-201s +registry):\n%s", diff)
	}

	// The hosts: what each one's own dockerd runs for this test's session.
	for _, h := range hosts {
		running := []string{}
		for id, state := range workspaceContainers(t, h.id, sessionLabel) {
			if state != "running" {
				t.Errorf("%s: container of %s is %s, want running", h.id, id, state)
			}
			running = append(running, id)
		}
		sort.Strings(running)
		want := []string{}
		for id, server := range registry {
			if server == h.id {
				want = append(want, id)
			}
		}
		sort.Strings(want)
		if diff := cmp.Diff(want, running, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: containers vs registry (-registry +dockerd):\n%s", h.id, diff)
		}
		if len(running) > perHost {
			t.Errorf("%s runs %d workspaces, room for %d", h.id, len(running), perHost)
		}
	}

	// Deleting them all leaves nothing on either host.
	deleteAll(t, k, slices.Sorted(maps.Keys(placed)), sessionLabel)
	for _, h := range hosts {
		if left := workspaceContainers(t, h.id, sessionLabel); len(left) != 0 {
			t.Errorf("%s: containers left after deleting every workspace: %v", h.id, left)
		}
	}
}

// deleteAll deletes workspaces a few at a time (204, or 404 for those never
// created or already deleted), then removes their data directories; it
// reports containers still on the hosts under the docker filter left.
func deleteAll(t *testing.T, k caller, ids []string, left string) {
	t.Helper()
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := k.tryDo(http.MethodDelete, "/workspaces/"+id, nil)
			if err == nil && r.status != http.StatusNoContent && r.status != http.StatusNotFound {
				err = fmt.Errorf("got %s, want 204 or 404", r)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("DELETE %s: %v", id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		t.Errorf("deleting workspaces:\n%s", strings.Join(errs, "\n"))
	}
	removeDataDirs(ids...)
	for _, h := range hosts {
		if got := workspaceContainers(t, h.id, left); len(got) != 0 {
			t.Errorf("%s: containers left after DELETE: %v", h.id, got)
		}
	}
}

// Ten simultaneous creates of one id, as retries after a timeout send
// them: all 201 with the same running record and its container, or all
// the same error when the create fails; never a 201 for a workspace that
// is not there.
func TestConcurrentCreatesOfOneID(t *testing.T) {
	needCluster(t)
	const callers = 10
	tests := []struct {
		name       string
		config     map[string]any
		wantStatus int
	}{
		{"all get the running workspace", starter(), http.StatusCreated},
		{"all get the failure", map[string]any{"tier": "starter", "base_image": "berth/no-such-image:none"}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := composeAPI().as(uniqueID("same-id-user"))
			session, id := uniqueID("s"), uniqueID("same")
			k.deleteOnCleanup(t, id)
			k.purgeOnCleanup(t, id)
			answers := make([]response, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					r, err := k.tryDo(http.MethodPost, "/workspaces", createBody(session, id, tt.config))
					if err != nil {
						r = response{status: -1, body: []byte(err.Error())}
					}
					answers[i] = r
				})
			}
			wg.Wait()
			for i, r := range answers {
				if r.status != tt.wantStatus || string(r.body) != string(answers[0].body) {
					t.Errorf("caller %d: %s; want %d, the same as caller 0 (%s)", i, r, tt.wantStatus, answers[0])
				}
			}
			if tt.wantStatus != http.StatusCreated {
				if r := k.get(t, id); r.status != http.StatusNotFound {
					t.Errorf("after the failed creates: GET %s, want 404", r)
				}
				return
			}
			var ws info
			answers[0].into(t, &ws)
			if ws.Status != "running" || ws.ContainerID == "" || containerState(t, ws.ServerID, id) != "running" {
				t.Errorf("the record all callers got: %s with container %q (%q on %s); want running", ws.Status, ws.ContainerID,
					containerState(t, ws.ServerID, id), ws.ServerID)
			}
		})
	}
}
