package e2e

// The high-availability fault suite (`make test-faults-ha`, also run by
// `make test`): three schedulers on raft (`make run-ha`) beside the two
// hosts. The leader is killed with SIGKILL during 100 concurrent creates
// and then nine more times; a follower is cut off the network; all three
// are restarted at once; one loses its disk. Every create answered 201 must
// exist and run afterwards, whichever scheduler answered it.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// haScheduler is one scheduler of `make run-ha`.
type haScheduler struct{ node, service, url string }

var haSchedulers = []haScheduler{
	{"scheduler-1", "scheduler", "http://127.0.0.1:3003"},
	{"scheduler-2", "scheduler-2", "http://127.0.0.1:3004"},
	{"scheduler-3", "scheduler-3", "http://127.0.0.1:3005"},
}

// container is the id of the scheduler's container, running or not.
func (s haScheduler) container(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=berth",
		"--filter", "label=com.docker.compose.service="+s.service).Output()
	id := strings.TrimSpace(string(out))
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("no single container for compose service %s (%v): %q", s.service, err, id)
	}
	return id
}

// reconnect puts a scheduler's container back on the compose network
// under its names (its service's, and the raft address's).
func (s haScheduler) reconnect(id string) error {
	args := []string{"network", "connect", "--alias", s.service}
	if s.node != s.service {
		args = append(args, "--alias", s.node)
	}
	return exec.Command("docker", append(args, "berth_berth", id)...).Run()
}

func needHA(t *testing.T) {
	t.Helper()
	needCluster(t)
	if os.Getenv("BERTH_FAULTS") != "1" || os.Getenv("BERTH_HA") != "1" {
		t.Skip("HA fault test: run `make test-faults-ha` (BERTH_FAULTS=1 BERTH_HA=1 on `make run-ha`)")
	}
	t.Cleanup(func() { // every scheduler back, whatever the test did to it
		for _, s := range haSchedulers {
			id := strings.TrimSpace(string(must(exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=berth",
				"--filter", "label=com.docker.compose.service="+s.service).Output())))
			_ = s.reconnect(id)
			exec.Command("docker", "start", id).Run()
		}
		waitFor(t, 90*time.Second, "three schedulers following one leader", func() (bool, string) {
			leaders, states := haStates()
			return len(leaders) == 1 && strings.Count(states, "Follower") == 2, states
		})
	})
}

// raftView is a scheduler's own raft view (GET /admin/cluster/raft), or
// nil when it does not answer.
func raftView(url string) map[string]any {
	req, _ := http.NewRequest(http.MethodGet, url+"/admin/cluster/raft", nil)
	req.Header.Set("X-Admin-Token", adminToken())
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var v map[string]any
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return nil
	}
	return v
}

// haStates returns the schedulers that say they lead, and every one's
// state for messages.
func haStates() (leaders []haScheduler, states string) {
	var b strings.Builder
	for _, s := range haSchedulers {
		v := raftView(s.url)
		state := "down"
		if v != nil {
			state, _ = v["state"].(string)
		}
		fmt.Fprintf(&b, "%s=%s ", s.node, state)
		if state == "Leader" {
			leaders = append(leaders, s)
		}
	}
	return leaders, b.String()
}

// haLeader waits for exactly one scheduler to lead, other than not.
func haLeader(t *testing.T, not string, within time.Duration) haScheduler {
	t.Helper()
	var l haScheduler
	waitFor(t, within, "one leader", func() (bool, string) {
		leaders, states := haStates()
		if len(leaders) == 1 && leaders[0].node != not {
			l = leaders[0]
			return true, ""
		}
		return false, states
	})
	return l
}

// retriable tells a transport error or a 503 that says to retry (an
// election, a leader lost mid-request, a create interrupted by one) from a
// final answer: a caller retries those with the same workspace id.
func retriable(r response, err error) bool {
	if err != nil {
		return true
	}
	// "… retry." (no leader) and "… Retry it …" (outcome unknown) alike.
	return r.status == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(string(r.body)), "retry")
}

// createRetry creates id as a caller that follows the contract does:
// retrying the same id while the answer says to.
func createRetry(t *testing.T, k caller, session, id string) {
	t.Helper()
	waitFor(t, 60*time.Second, "create "+id, func() (bool, string) {
		r, err := k.tryDo(http.MethodPost, "/workspaces", createBody(session, id, starter()))
		if retriable(r, err) {
			return false, fmt.Sprint(r, err)
		}
		if r.status != http.StatusCreated {
			t.Fatalf("create %s: %s", id, r)
		}
		return true, ""
	})
}

// inside asks a scheduler's own API from inside its container (a
// scheduler cut off the network keeps its loopback, not its published
// port): curl's status line and body.
func (s haScheduler) inside(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	out, _ := exec.Command("docker", "exec", s.container(t), "curl", "-s", "-m", "20", "-w", "\n%{http_code}", "-X", method,
		"-H", "X-Internal-Service-Token: "+serviceToken(), "-H", "X-User-ID: ha-user", "-H", "X-Admin-Token: "+adminToken(),
		"-H", "Content-Type: application/json", "--data-binary", body, "http://127.0.0.1:3003"+path).Output()
	text := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(text, '\n')
	code := 0
	fmt.Sscan(text[i+1:], &code)
	if i < 0 {
		return code, ""
	}
	return code, text[:i]
}

// TestHAKillLeaderDuringCreates: 100 creates spread over the three
// schedulers, the leader killed after the first 201; callers retry the
// same id on a leader 503 or a lost connection, as the contract lets them.
// Every 201 exists and runs afterwards, and the hosts hold exactly the
// registry's containers.
func TestHAKillLeaderDuringCreates(t *testing.T) {
	needHA(t)
	leader := haLeader(t, "", 60*time.Second)
	session := uniqueID("ha")
	callers := make([]caller, len(haSchedulers))
	for i, s := range haSchedulers {
		callers[i] = newClient(s.url, serviceToken()).as("ha-user")
	}
	const n = 100
	var (
		mu    sync.Mutex
		acked = map[string]string{} // id -> the scheduler that answered
		final = map[string]int{}    // final status and detail -> count
		wg    sync.WaitGroup
		once  sync.Once
	)
	first := make(chan struct{})
	for i := range n {
		id := uniqueID("ha")
		callers[0].deleteOnCleanup(t, id)
		wg.Go(func() {
			deadline := time.Now().Add(2 * time.Minute)
			for try := 0; time.Now().Before(deadline); try++ {
				k := callers[(i+try)%len(callers)] // a retry goes to the next scheduler
				r, err := k.tryDo(http.MethodPost, "/workspaces", createBody(session, id, starter()))
				if retriable(r, err) {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				mu.Lock()
				key := fmt.Sprint(r.status)
				if r.status != http.StatusCreated {
					key += " " + strings.TrimSpace(string(r.body))
				}
				final[key]++
				if r.status == http.StatusCreated {
					acked[id] = haSchedulers[(i+try)%len(callers)].node
					once.Do(func() { close(first) })
				}
				mu.Unlock()
				return
			}
		})
	}
	select {
	case <-first:
	case <-time.After(2 * time.Minute):
		t.Fatal("no create succeeded before the kill")
	}
	killed := time.Now()
	docker(t, "kill", "-s", "KILL", leader.container(t))
	next := haLeader(t, leader.node, 30*time.Second)
	t.Logf("leader %s killed: %s leads after %s", leader.node, next.node, time.Since(killed).Round(time.Millisecond))
	wg.Wait()
	mu.Lock()
	t.Logf("%d creates acknowledged; final answers %v", len(acked), final)
	mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no create acknowledged")
	}
	// Every caller got a final answer, and every one but a 201 is a refusal
	// for room (the two hosts hold about ten starter workspaces).
	answered := 0
	for key, n := range final {
		answered += n
		if key != "201" && key != `503 {"detail":"No server has sufficient resources"}` {
			t.Errorf("%d creates answered %s", n, key)
		}
	}
	if answered != n {
		t.Errorf("%d of %d creates got a final answer within 2 minutes", answered, n)
	}
	docker(t, "start", leader.container(t))

	k := callers[slices.IndexFunc(haSchedulers, func(s haScheduler) bool { return s.node == next.node })]
	for id, by := range acked {
		var ws info
		r := k.get(t, id)
		if r.status != http.StatusOK {
			t.Errorf("acknowledged workspace %s (201 from %s): GET %s", id, by, r)
			continue
		}
		r.into(t, &ws)
		if ws.Status != "running" || containerState(t, ws.ServerID, id) != "running" {
			t.Errorf("acknowledged workspace %s (201 from %s): status %s, container %q on %s", id, by, ws.Status, containerState(t, ws.ServerID, id), ws.ServerID)
		}
	}
	// The new leader's reconciliation leaves the hosts holding exactly the
	// registry's containers of this session: no half-made one, no double.
	waitContainersMatchRecords(t, k, session, slices.Collect(maps.Keys(acked)), 120*time.Second)
}

// TestHAElectionTimes: the leader is killed (SIGKILL) ten times; each time
// the time until a survivor says it leads and until a create through a
// survivor is answered 201 is measured, then the killed one is started
// again and follows. The figures go to the README (p50 and the worst).
func TestHAElectionTimes(t *testing.T) {
	needHA(t)
	k := composeAPI()
	var elect, create []time.Duration
	for round := range 10 {
		leader := haLeader(t, "", 60*time.Second)
		var via haScheduler
		for _, s := range haSchedulers {
			if s.node != leader.node {
				via = s
			}
		}
		id := uniqueID("elect")
		c := newClient(via.url, k.token).as("ha-user")
		c.deleteOnCleanup(t, id)
		killed := time.Now()
		docker(t, "kill", "-s", "KILL", leader.container(t))
		haLeader(t, leader.node, 30*time.Second)
		elect = append(elect, time.Since(killed))
		waitFor(t, 60*time.Second, "a create through "+via.node, func() (bool, string) {
			r, err := c.tryDo(http.MethodPost, "/workspaces", createBody(uniqueID("elect-s"), id, starter()))
			if err != nil {
				return false, err.Error()
			}
			return r.status == http.StatusCreated, r.String()
		})
		create = append(create, time.Since(killed))
		c.do(t, http.MethodDelete, "/workspaces/"+id, nil)
		docker(t, "start", leader.container(t))
		waitFor(t, 60*time.Second, leader.node+" follows again", func() (bool, string) {
			v := raftView(leader.url)
			return v != nil && v["state"] == "Follower" && v["leader_id"] != "", fmt.Sprint(v["state"])
		})
		t.Logf("round %d: %s killed; a leader after %s, a create answered 201 after %s", round+1, leader.node,
			elect[round].Round(time.Millisecond), create[round].Round(time.Millisecond))
	}
	slices.Sort(elect)
	slices.Sort(create)
	t.Logf("FIGURE ha_election: leader killed -> a new leader, 10 kills: p50 %s, worst %s; -> a create answered 201: p50 %s, worst %s",
		elect[len(elect)/2].Round(time.Millisecond), elect[len(elect)-1].Round(time.Millisecond),
		create[len(create)/2].Round(time.Millisecond), create[len(create)-1].Round(time.Millisecond))
}

// TestHAFollowerPartitioned: a follower cut off the network serves no
// write (503 once no leader answers it), creates through the others go on,
// and once reconnected it catches up: what was created meanwhile is
// readable through it.
func TestHAFollowerPartitioned(t *testing.T) {
	needHA(t)
	leader := haLeader(t, "", 60*time.Second)
	var cut, other haScheduler
	for _, s := range haSchedulers {
		if s.node != leader.node {
			if cut.node == "" {
				cut = s
			} else {
				other = s
			}
		}
	}
	docker(t, "network", "disconnect", "berth_berth", cut.container(t))
	connected := false
	t.Cleanup(func() {
		if !connected {
			_ = cut.reconnect(cut.container(t))
		}
	})
	id := uniqueID("part")
	k := newClient(other.url, serviceToken()).as("ha-user")
	k.deleteOnCleanup(t, id)
	createRetry(t, k, uniqueID("part-s"), id) // through the leader's majority, while cut is off
	waitFor(t, 30*time.Second, cut.node+" refuses writes", func() (bool, string) {
		body, _ := json.Marshal(createBody(uniqueID("part-s"), uniqueID("part-x"), starter()))
		code, text := cut.inside(t, http.MethodPost, "/workspaces", string(body))
		return code == http.StatusServiceUnavailable, fmt.Sprint(code, " ", text)
	})
	want := raftView(leader.url)["commit_index"].(float64) // the create made while it was cut off included
	if err := cut.reconnect(cut.container(t)); err != nil {
		t.Fatalf("reconnect %s: %v", cut.node, err)
	}
	connected = true
	// Its own view (asked inside its container: not forwarded) shows it
	// applied what the leader had committed.
	waitFor(t, 60*time.Second, cut.node+" caught up", func() (bool, string) {
		code, text := cut.inside(t, http.MethodGet, "/admin/cluster/raft", "")
		var v map[string]any
		_ = json.Unmarshal([]byte(text), &v)
		applied, _ := v["applied_index"].(float64)
		return code == 200 && v["state"] == "Follower" && applied >= want, fmt.Sprint(code, " ", text)
	})
}

// TestHAAllRestartedAndDiskWiped: all three schedulers killed and started
// at once keep every workspace; then one follower loses its disk and
// rejoins from the leader's snapshot.
func TestHAAllRestartedAndDiskWiped(t *testing.T) {
	needHA(t)
	haLeader(t, "", 60*time.Second)
	id := uniqueID("restart")
	k := composeAPI().as("ha-user")
	k.deleteOnCleanup(t, id)
	createRetry(t, k, uniqueID("restart-s"), id)
	for _, s := range haSchedulers {
		docker(t, "kill", "-s", "KILL", s.container(t))
	}
	for _, s := range haSchedulers {
		docker(t, "start", s.container(t))
	}
	haLeader(t, "", 60*time.Second)
	waitFor(t, 60*time.Second, "the workspace after all three restarted", func() (bool, string) {
		r, err := k.tryDo(http.MethodGet, "/workspaces/"+id, nil)
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusOK, r.String()
	})
	// Every file is sound and they reach the same applied index.
	for _, s := range haSchedulers {
		if out := docker(t, "exec", s.container(t), "/usr/local/bin/berth-scheduler", "check"); out != "ok" {
			t.Errorf("integrity check of %s after kill -9 of all three: %q, want ok", s.node, out)
		}
	}
	waitFor(t, 30*time.Second, "the three at one applied index", func() (bool, string) {
		var idx []float64
		for _, s := range haSchedulers {
			v := raftView(s.url)
			if v == nil {
				return false, s.node + " does not answer"
			}
			a, _ := v["applied_index"].(float64)
			idx = append(idx, a)
		}
		return idx[0] == idx[1] && idx[1] == idx[2], fmt.Sprint(idx)
	})

	// A follower's disk is wiped: it starts empty under its id and address,
	// joins, and is sent the registry.
	leader := haLeader(t, "", 60*time.Second)
	var f haScheduler
	for _, s := range haSchedulers {
		if s.node != leader.node && s.service != "scheduler" { // scheduler-1 would bootstrap anew: it is never wiped
			f = s
		}
	}
	if f.node == "" {
		t.Fatalf("no follower that joined (leader %s)", leader.node)
	}
	ctr := f.container(t)
	docker(t, "stop", ctr)
	docker(t, "run", "--rm", "--volumes-from", ctr, "--entrypoint", "sh", "berth/scheduler:dev", "-c", "rm -rf /var/lib/berth-scheduler/*")
	want := raftView(leader.url)["commit_index"].(float64)
	docker(t, "start", ctr)
	// Its own view (served by itself, not the leader) shows it applied all
	// the leader had committed before it came back.
	waitFor(t, 90*time.Second, f.node+" back with the registry", func() (bool, string) {
		v := raftView(f.url)
		if v == nil {
			return false, "no answer"
		}
		applied, _ := v["applied_index"].(float64)
		return v["state"] == "Follower" && applied >= want, fmt.Sprintf("%v applied %v of %v", v["state"], applied, want)
	})
	if r, err := newClient(f.url, serviceToken()).as("ha-user").tryDo(http.MethodGet, "/workspaces/"+id, nil); err != nil || r.status != http.StatusOK {
		t.Errorf("GET through the rejoined %s: %v %v", f.node, r, err)
	}
}

// TestHAPanelShowsTheLeader: the admin panel, opened in Chromium on a
// follower's address, shows the schedulers and their leader (the page is
// served by the leader through the follower). After the leader is killed,
// the panel (signed in again: sessions live on the leader that made them)
// shows the new one.
func TestHAPanelShowsTheLeader(t *testing.T) {
	needHA(t)
	chromium := chromiumPath(t)
	leader := haLeader(t, "", 60*time.Second)
	var via haScheduler
	for _, s := range haSchedulers {
		if s.node != leader.node {
			via = s
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1440, 1000))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	shots := &panelShots{dir: filepath.Join(repoRoot(t), ".artifacts", "screenshots")}
	if err := os.MkdirAll(shots.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	showsLeader := func(name string) {
		t.Helper()
		// Signed out by a failover: sign in again on the same address.
		_, err := chromedp.Run(bctx, chromedp.Navigate(via.url+"/admin/ui"))
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#token, #cluster-cards"))); err != nil {
			t.Fatal(err)
		}
		if loc, _ := chromedp.Run(bctx, chromedp.Location()); strings.HasSuffix(loc, "/admin/ui/signin") {
			if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#token")), chromedp.SendKeys(chromedp.CSS("#token"), adminToken()),
				chromedp.Click(chromedp.CSS("#signin-submit")), chromedp.WaitVisible(chromedp.CSS(rowSel("ws-local-1")))); err != nil {
				t.Fatalf("sign in on %s: %v", via.node, err)
			}
		}
		_, err = chromedp.Run(bctx, chromedp.Poll[bool](`document.querySelector('[data-card="schedulers"]')?.dataset.leader === "`+name+`" && `+
			`document.querySelectorAll('[data-card="schedulers"] li[data-scheduler]').length === 3`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
		if err != nil {
			cards, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#cluster-cards [data-card]')].map(c => c.dataset.card + ':' + (c.dataset.leader ?? '')).join(' ')`))
			t.Logf("cards on the page: %s", cards)
			t.Fatalf("the panel on %s does not show %s leading among 3 schedulers: %v", via.node, name, err)
		}
	}
	showsLeader(leader.node)
	shots.take(t, bctx, "ha-schedulers")
	docker(t, "kill", "-s", "KILL", leader.container(t))
	next := haLeader(t, leader.node, 30*time.Second)
	showsLeader(next.node)
	shots.take(t, bctx, "ha-new-leader")
	docker(t, "start", leader.container(t))
}
