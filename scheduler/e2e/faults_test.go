package e2e

// The fault suite (`make test-faults`, also run by `make test`): real
// faults injected into the compose cluster — an agent killed with SIGKILL, a
// whole DinD host killed, a host cut off the network, the scheduler killed
// in the middle of 50 creates — each checking that nothing is lost. These
// tests stop and restart cluster members, so they run only with
// BERTH_FAULTS=1, after the other suites.

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func needFaults(t *testing.T) {
	t.Helper()
	needCluster(t)
	if os.Getenv("BERTH_FAULTS") != "1" {
		t.Skip("fault test: run `make test-faults` (or set BERTH_FAULTS=1)")
	}
}

// serverHealth is the scheduler's live health state of each server, read
// from its /metrics (berth_server_health{health=…,server=…} 1).
func serverHealth(t *testing.T) map[string]string {
	t.Helper()
	resp, err := http.Get(schedulerURL + "/metrics")
	if err != nil {
		return map[string]string{}
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "berth_server_health{") || !strings.HasSuffix(line, " 1") {
			continue
		}
		var health, server string
		for _, kv := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "berth_server_health{"), "} 1"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "health":
				health = strings.Trim(v, `"`)
			case "server":
				server = strings.Trim(v, `"`)
			}
		}
		out[server] = health
	}
	return out
}

func placeable(h string) bool { return h == "healthy" || h == "degraded" }

// waitHealth waits until server's health satisfies ok and returns how long it took.
func waitHealth(t *testing.T, server string, within time.Duration, what string, ok func(string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, within, server+" "+what, func() (bool, string) {
		h := serverHealth(t)[server]
		return ok(h), "health " + h
	})
	return time.Since(start)
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// restoreHost makes sure a host is running, connected and healthy again
// when a test ends, whatever happened to it.
func restoreHost(t *testing.T, server string) {
	t.Cleanup(func() {
		id := strings.TrimSpace(string(must(exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=berth",
			"--filter", "label=com.docker.compose.service="+server).Output())))
		exec.Command("docker", "network", "connect", "--alias", server, "berth_berth", id).Run()
		exec.Command("docker", "start", id).Run()
		waitHealth(t, server, 90*time.Second, "healthy again after the test", placeable)
	})
}

func must(b []byte, _ error) []byte { return b }

// placeOn creates starter workspaces until one lands on server (SPREAD
// alternates between the two hosts) and returns it.
func placeOn(t *testing.T, k caller, session, server string) info {
	t.Helper()
	for i := 0; i < 4; i++ {
		ws := k.mustCreate(t, session, uniqueID("fault"), nil)
		if ws.ServerID == server {
			return ws
		}
	}
	t.Fatalf("no workspace landed on %s", server)
	return info{}
}

// kill -9 the agent of a host: its workspaces keep running, the host is out
// of placement while the agent is down, and the restarted agent (supervised
// like systemd's Restart=always) is re-adopted.
func TestFaultKillAgent(t *testing.T) {
	needFaults(t)
	k := composeAPI().as("fault-user")
	ws := k.mustCreate(t, uniqueID("s"), uniqueID("fault"), nil)
	host := ws.ServerID
	restoreHost(t, host)
	docker(t, "exec", hostContainer(t, host), "pkill", "-KILL", "-f", "/usr/local/bin/berth-agent")
	took := waitHealth(t, host, 5*time.Second, "out of placement", func(h string) bool { return !placeable(h) })
	t.Logf("killed agent on %s excluded after %s", host, took.Round(time.Millisecond))
	if st := containerState(t, host, ws.ID); st != "running" {
		t.Errorf("workspace container while its agent is dead: %s, want running", st)
	}
	waitHealth(t, host, 30*time.Second, "healthy after the agent restarted", placeable)
	waitFor(t, 15*time.Second, "workspace usable through the restarted agent", func() (bool, string) {
		if st := k.status(t, ws.ID); st != "running" {
			return false, "status " + st
		}
		res := k.exec(t, ws.ID, map[string]any{"command": "echo still-here"})
		return res.ExitCode == 0 && res.Stdout == "still-here\n", fmt.Sprintf("%+v", res)
	})
}

// Kill a whole DinD host: out of placement within 2 s, new workspaces go to
// the other host, and after it comes back its workspace is still on record
// and restarts.
func TestFaultKillHost(t *testing.T) {
	needFaults(t)
	k := composeAPI().as("fault-user")
	session := uniqueID("s")
	victim, other := "ws-local-2", "ws-local-1"
	ws := placeOn(t, k, session, victim)
	restoreHost(t, victim)
	id := hostContainer(t, victim)
	start := time.Now()
	docker(t, "kill", id)
	waitHealth(t, victim, 2*time.Second, "out of placement within 2s", func(h string) bool { return !placeable(h) })
	t.Logf("killed host %s excluded after %s", victim, time.Since(start).Round(time.Millisecond))
	for i := 0; i < 2; i++ {
		if got := k.mustCreate(t, session, uniqueID("fault"), nil); got.ServerID != other {
			t.Errorf("new workspace placed on %s while %s is dead, want %s", got.ServerID, victim, other)
		}
	}
	docker(t, "start", id)
	waitHealth(t, victim, 90*time.Second, "healthy after restart", placeable)
	if r := k.get(t, ws.ID); r.status != http.StatusOK {
		t.Fatalf("workspace on the killed host: GET %s, want it still on record", r)
	}
	if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil); r.status != http.StatusNoContent {
		t.Fatalf("restart after the host came back: %s", r)
	}
	waitFor(t, 30*time.Second, "restarted workspace runs", func() (bool, string) {
		res := k.exec(t, ws.ID, map[string]any{"command": "echo back"})
		return res.ExitCode == 0, fmt.Sprintf("%+v", res)
	})
}

// Cut a host off the network: out of placement within 2 s; its agent fences
// (stops) its workspaces after the lease; the scheduler declares them
// server_lost. A restart is refused while the host is cut off (the home is
// there: starting elsewhere would start without the user's files); once
// the network heals, the restart starts the workspace where it was, files
// and all, never twice.
func TestFaultPartition(t *testing.T) {
	needFaults(t)
	k := composeAPI().as("fault-user")
	victim := "ws-local-2"
	ws := placeOn(t, k, uniqueID("s"), victim)
	if res := k.exec(t, ws.ID, map[string]any{"command": "echo kept > work.txt"}); res.ExitCode != 0 {
		t.Fatalf("write a file: %+v", res)
	}
	restoreHost(t, victim)
	id := hostContainer(t, victim)
	start := time.Now()
	docker(t, "network", "disconnect", "-f", "berth_berth", id)
	// Measured 0.8-2.2 s here, the disconnect itself included (logged below,
	// README "Failure handling"); the bound is not a speed claim, only well
	// before the server-lost grace (15 s) that the rest of the test waits for.
	waitHealth(t, victim, 5*time.Second, "out of placement within 5s", func(h string) bool { return !placeable(h) })
	t.Logf("partitioned host %s excluded after %s", victim, time.Since(start).Round(time.Millisecond))

	// The agent fences: cut off from scheduler and gossip for the lease (10 s), it stops the workspace.
	waitFor(t, 40*time.Second, "partitioned agent stops its workspace", func() (bool, string) {
		st := containerState(t, victim, ws.ID)
		return st == "exited", "container " + st
	})
	waitFor(t, 40*time.Second, "workspace declared server_lost", func() (bool, string) {
		var got info
		k.get(t, ws.ID).into(t, &got)
		return got.Status == "error", "status " + got.Status
	})
	r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil)
	if r.status != http.StatusNotFound || !strings.Contains(r.detail(), "home directory is on server '"+victim+"'") {
		t.Fatalf("restart of a server_lost workspace while its host is cut off: %s, want 404 naming the home's server", r)
	}
	for _, h := range hosts {
		if h.id != victim && containerState(t, h.id, ws.ID) != "" {
			t.Errorf("a container of %s appeared on %s", ws.ID, h.id)
		}
	}

	docker(t, "network", "connect", "--alias", victim, "berth_berth", id)
	waitHealth(t, victim, 60*time.Second, "healthy after the network healed", placeable)
	if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil); r.status != http.StatusNoContent {
		t.Fatalf("restart after the heal: %s, want 204", r)
	}
	var back info
	k.get(t, ws.ID).into(t, &back)
	if back.ServerID != victim || back.Status != "running" || back.Metadata["home_reset"] != nil {
		t.Errorf("after restart: on %s, %s, metadata %v; want running on %s with its home", back.ServerID, back.Status, back.Metadata, victim)
	}
	if res := k.exec(t, ws.ID, map[string]any{"command": "cat work.txt"}); res.Stdout != "kept\n" {
		t.Errorf("work.txt after the heal: %+v", res)
	}
}

// kill -9 the scheduler while 50 creates are in flight, restart it, and
// check that nothing acknowledged is lost and nothing unrecorded survives.
func TestFaultKillSchedulerDuringCreates(t *testing.T) {
	needFaults(t)
	k := composeAPI().as("crash-user")
	session := uniqueID("crash")
	sched := hostContainer(t, "scheduler")
	t.Cleanup(func() {
		exec.Command("docker", "start", sched).Run()
		waitFor(t, 60*time.Second, "scheduler back", func() (bool, string) {
			resp, err := http.Get(schedulerURL + "/health")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	})

	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uniqueID("crash")
		k.deleteOnCleanup(t, ids[i])
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	first := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := k.tryDo(http.MethodPost, "/workspaces", createBody(session, id, starter()))
			if err == nil && r.status == http.StatusCreated {
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				once.Do(func() { close(first) })
			}
		}()
	}
	select {
	case <-first:
	case <-time.After(60 * time.Second):
		t.Fatal("no create succeeded before the kill")
	}
	docker(t, "kill", "-s", "KILL", sched)
	wg.Wait()
	mu.Lock()
	t.Logf("%d of %d creates acknowledged before the scheduler died", len(acked), n)
	mu.Unlock()
	docker(t, "start", sched)
	waitFor(t, 60*time.Second, "scheduler answers again", func() (bool, string) {
		resp, err := http.Get(schedulerURL + "/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})

	// Every acknowledged workspace exists and runs.
	for id := range acked {
		var ws info
		r := k.get(t, id)
		if r.status != http.StatusOK {
			t.Errorf("acknowledged workspace %s: GET %s", id, r)
			continue
		}
		r.into(t, &ws)
		if ws.Status != "running" || containerState(t, ws.ServerID, id) != "running" {
			t.Errorf("acknowledged workspace %s: status %s, container %q on %s", id, ws.Status, containerState(t, ws.ServerID, id), ws.ServerID)
		}
	}
	// After reconciliation, the containers of this session on the hosts are
	// exactly the registry's records: nothing half-made survives.
	waitContainersMatchRecords(t, k, session, slices.Collect(maps.Keys(acked)), 90*time.Second)
	// No server is overcommitted: what its records reserve fits its capacity.
	var rows []info
	k.do(t, http.MethodGet, "/workspaces?session_id="+session, nil).into(t, &rows)
	per := map[string]int{}
	for _, w := range rows {
		per[w.ServerID]++
	}
	for id, c := range agents(t) {
		capa, err := c.Capacity(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if mem := int64(per[id]) * 4096; mem > capa.MemoryTotalMB {
			t.Errorf("%s holds %d starter workspaces (%d MB) with %d MB of memory", id, per[id], mem, capa.MemoryTotalMB)
		}
	}
	// The registry file survived the kill intact.
	if out := docker(t, "exec", sched, "/usr/local/bin/berth-scheduler", "check"); out != "ok" {
		t.Errorf("integrity check after kill -9: %q, want ok", out)
	}
}

// waitContainersMatchRecords waits until the hosts hold exactly the
// registry's containers of session, one for one, with no create pending
// and every workspace of acked recorded: after a crash, nothing half-made
// survives and nothing acknowledged is lost.
func waitContainersMatchRecords(t *testing.T, k caller, session string, acked []string, within time.Duration) {
	t.Helper()
	waitFor(t, within, "containers match records one for one", func() (bool, string) {
		var rows []info
		k.do(t, http.MethodGet, "/workspaces?session_id="+session, nil).into(t, &rows)
		recorded := map[string]string{}
		for _, w := range rows {
			if w.Status == "creating" {
				return false, "a create is still pending: " + w.ID
			}
			recorded[w.ID] = w.ServerID
		}
		found := map[string]string{}
		for _, h := range hosts {
			for id := range workspaceContainers(t, h.id, "label=podex.session_id="+session) {
				found[id] = h.id
			}
		}
		if fmt.Sprint(recorded) != fmt.Sprint(found) {
			return false, fmt.Sprintf("records %v, containers %v", recorded, found)
		}
		for _, id := range acked {
			if _, ok := recorded[id]; !ok {
				return false, "acknowledged workspace lost: " + id
			}
		}
		return true, ""
	})
}
