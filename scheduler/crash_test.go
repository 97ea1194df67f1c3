package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// kill -9 of the scheduler process while 1,000 creates are in flight
// through its HTTP API, against in-process agents over real mTLS: every
// create answered 201 is in the registry file afterwards as running, with
// its container on the agent it names, and no server holds more than its
// room. Group commit answers a writer only once its batch has committed:
// this catches a 201 sent before that. (A process kill keeps what reached
// the OS; a power loss is what synchronous=FULL's fsync at each commit is
// for.)
func TestSchedulerKilledDuringThousandCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the scheduler and runs 1,000 creates")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "scheduler")
	if out, err := exec.Command("go", "build", "-o", bin, "berth/scheduler").CombinedOutput(); err != nil {
		t.Fatalf("build scheduler: %v\n%s", err, out)
	}
	pki := testutil.NewPKI(t)
	const servers, room, creates = 10, 120, 1000 // room for 1,200: every create can succeed
	agents := map[string]*agenttest.Agent{}
	var seeds []map[string]any
	for i := range servers {
		id := fmt.Sprintf("crash-%02d", i)
		a := agenttest.Start(t, pki, id)
		agents[id] = a
		_, port, _ := net.SplitHostPort(a.Addr())
		p, _ := strconv.Atoi(port)
		seeds = append(seeds, map[string]any{"id": id, "hostname": id, "ip_address": "127.0.0.1", "agent_port": p,
			"architecture": "amd64", "total_cpu": 2 * room, "total_memory_mb": 4096 * room, "total_disk_gb": 20 * room,
			"total_bandwidth_mbps": 100 * room, "max_workspaces": room})
	}
	seedJSON, _ := json.Marshal(seeds)
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	dataDir := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_LISTEN=" + addr, "BERTH_DATA_DIR=" + dataDir,
		"BERTH_TLS_CERT=" + cert, "BERTH_TLS_KEY=" + key, "BERTH_TLS_CA=" + pki.CAFile,
		"INTERNAL_SERVICE_TOKEN=crash-token", "COMPUTE_WORKSPACE_SERVERS=" + string(seedJSON)}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	base := "http://" + addr
	testutil.Eventually(t, 30*time.Second, "scheduler ready", func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: creates}, Timeout: time.Minute}
	var mu sync.Mutex
	acked := map[string]bool{}
	var answered atomic.Int64
	var wg sync.WaitGroup
	for i := range creates {
		wg.Go(func() {
			id := fmt.Sprintf("crash-ws-%04d", i)
			body, _ := json.Marshal(map[string]any{"session_id": "s", "workspace_id": id, "config": map[string]any{"tier": "starter"}})
			req, _ := http.NewRequest(http.MethodPost, base+"/workspaces", bytes.NewReader(body))
			req.Header.Set("X-Internal-Service-Token", "crash-token")
			req.Header.Set("X-User-ID", "crash-user")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return // the scheduler died under it
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				answered.Add(1)
			}
		})
	}
	// Kill it with a third of the creates answered: hundreds in flight,
	// batches being written.
	testutil.Eventually(t, 2*time.Minute, "a third of the creates answered", func() bool { return answered.Load() >= creates/3 })
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	wg.Wait()
	t.Logf("%d of %d creates answered 201 before kill -9", len(acked), creates)

	db, err := registry.Open(context.Background(), filepath.Join(dataDir, "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("open the registry after the crash: %v\n%s", err, logs.String())
	}
	defer db.Close()
	rows, err := db.ListWorkspaces(context.Background(), registry.WorkspaceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]registry.Workspace{}
	perServer := map[string]int{}
	for _, w := range rows {
		byID[w.ID] = w
		perServer[w.ServerID]++
	}
	for id := range acked {
		w, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("%s was answered 201 but is not in the registry", id)
		case w.Status != fleet.StatusRunning || w.ContainerID == "":
			t.Errorf("%s was answered 201 but is %s with container %q", id, w.Status, w.ContainerID)
		case !hasContainer(agents[w.ServerID], w.ContainerID):
			t.Errorf("%s was answered 201 but its container %s is not on %s", id, w.ContainerID, w.ServerID)
		}
	}
	for s, n := range perServer {
		if n > room {
			t.Errorf("%s holds %d workspaces, room for %d", s, n, room)
		}
	}
}

func hasContainer(a *agenttest.Agent, id string) bool {
	if a == nil {
		return false
	}
	for _, c := range a.Containers() {
		if c.ID == id {
			return true
		}
	}
	return false
}
