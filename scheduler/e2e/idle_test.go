package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The idle stop on real hosts, with a scheduler of the test's own whose
// idle limit is 20 s: a workspace left alone is stopped within 10 s of its
// limit; one with a terminal open and typing, one whose preview is used,
// and one busy on CPU keep running.
func TestIdleStop(t *testing.T) {
	needCluster(t)
	const limit = 20 * time.Second
	roomy := seed{CPU: 32, MemoryMB: 65536, DiskGB: 1000, Region: "local"}
	s := startScheduler(t, "spread", map[string]seed{hosts[0].id: roomy, hosts[1].id: roomy},
		"BERTH_IDLE_TIMEOUT="+limit.String(), "BERTH_IDLE_CPU_PERCENT=20", "BERTH_ADMIN_TOKEN="+testAdminToken)
	k := s.api.as(uniqueID("idle-user"))
	session := uniqueID("s")
	alone := k.mustCreate(t, session, uniqueID("idle-alone"), nil)
	typing := k.mustCreate(t, session, uniqueID("idle-typing"), nil)
	previewed := k.mustCreate(t, session, uniqueID("idle-preview"), nil)
	busy := k.mustCreate(t, session, uniqueID("idle-busy"), nil)
	if res := k.exec(t, previewed.ID, map[string]any{"command": "nohup python3 -m http.server 8080 >/dev/null 2>&1 &"}); res.ExitCode != 0 {
		t.Fatalf("start the preview app: %+v", res)
	}
	if res := k.exec(t, busy.ID, map[string]any{"command": "nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &"}); res.ExitCode != 0 {
		t.Fatalf("start the CPU loop: %+v", res)
	}
	t.Cleanup(func() { k.exec(t, busy.ID, map[string]any{"command": "pkill -f 'while :' || true"}) })

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	// Someone types in a terminal every 2 s.
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/terminal/" + typing.ID + "?session_id=idle&shell=bash"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{"X-Internal-Service-Token": {testToken}}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.CloseNow()
	wg.Go(func() { // drain the output
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	})
	every := func(fn func()) {
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					fn()
				}
			}
		})
	}
	every(func() { _ = conn.Write(ctx, websocket.MessageText, []byte("echo still here\r")) })
	// Someone looks at the preview every 2 s.
	every(func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/preview/"+previewed.ID+"/proxy/8080/", nil)
		req.Header.Set("X-Internal-Service-Token", testToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})

	var last info
	k.get(t, alone.ID).into(t, &last)
	due := parseISO(t, last.LastActivity).Add(limit)
	waitFor(t, limit+40*time.Second, "the workspace left alone is stopped", func() (bool, string) {
		var ws info
		k.get(t, alone.ID).into(t, &ws)
		return ws.Status == "stopped", ws.Status
	})
	late := time.Since(due)
	t.Logf("the workspace left alone was stopped %s after its idle limit", late.Round(time.Millisecond))
	if late > 10*time.Second {
		t.Errorf("stopped %s after its idle limit, want within 10 s", late.Round(time.Millisecond))
	}
	if got := containerState(t, alone.ServerID, alone.ID); got != "exited" {
		t.Errorf("its container: %q, want exited (stopped, not removed)", got)
	}
	if evs := adminEventsOf(t, s, alone.ID); !strings.Contains(strings.Join(evs, " "), "workspace.idle_stopped") {
		t.Errorf("events %v lack workspace.idle_stopped", evs)
	}
	// The others have gone past the limit too by now, in use all along.
	if wait := time.Until(parseISO(t, typing.CreatedAt).Add(limit + 10*time.Second)); wait > 0 {
		waitFor(t, wait+5*time.Second, "the others' limits to pass", func() (bool, string) {
			return time.Now().After(parseISO(t, typing.CreatedAt).Add(limit + 10*time.Second)), "not yet"
		})
	}
	for _, ws := range []info{typing, previewed, busy} {
		if st := k.status(t, ws.ID); st != "running" {
			t.Errorf("%s (in use) is %s, want running", ws.ID, st)
		}
	}
}

// testAdminToken is the admin token of the schedulers tests start with it.
const testAdminToken = "e2e-admin-token-0123456789"

// adminEventsOf lists a workspace's event kinds from the admin API of a
// scheduler the test started with BERTH_ADMIN_TOKEN=testAdminToken.
func adminEventsOf(t *testing.T, s *scheduler, id string) []string {
	t.Helper()
	var kinds []string
	for _, e := range eventsOf(t, s, id) {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}
