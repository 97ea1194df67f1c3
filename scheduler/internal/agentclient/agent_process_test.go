package agentclient_test

// These tests run the real agent binary as a separate process against the
// machine's real Docker daemon, and drive it over real mTLS with this
// package's client: the path the scheduler takes in production.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/agentproc"
	"berth/shared/wire"
)

type agentProc struct {
	client  *agentclient.Client
	dataDir string
}

func startAgent(t *testing.T) *agentProc {
	a := agentproc.Start(t, "ws-test")
	return &agentProc{client: a.Client, dataDir: a.DataDir}
}

func testImage() string { return agentproc.Image() }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestAgentProcessLifecycle(t *testing.T) {
	a := startAgent(t)
	ctx := ctxT(t)
	name := fmt.Sprintf("berth-test-%d", time.Now().UnixNano())
	ctr, err := a.client.Create(ctx, wire.CreateContainerRequest{
		Name: name, Image: testImage(), WorkspaceID: "ws-" + name[11:], Epoch: 3, Start: true,
		Env:       map[string]string{"GREETING": "hello"},
		Labels:    map[string]string{wire.LabelUserID: "u1"},
		Mounts:    []wire.Mount{{Source: "workspaces/" + name + "/home", Target: "/home/dev"}},
		Resources: wire.Resources{CPU: 0.5, MemoryMB: 256},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { a.client.Remove(context.Background(), ctr.ID, true) })
	if ctr.State != "running" {
		t.Errorf("state = %q, want running", ctr.State)
	}
	for k, want := range map[string]string{wire.LabelManaged: "true", wire.LabelServerID: "ws-test", wire.LabelEpoch: "3", wire.LabelUserID: "u1", wire.LabelPodexWorkspace: "true"} {
		if got := ctr.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	// exec: separate streams, exit code, environment, user
	res, err := a.client.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "echo out $GREETING $(id -un); echo err >&2; exit 3"}, User: "dev", WorkingDir: "/home/dev"})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if got, want := string(res.Stdout), "out hello dev\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := string(res.Stderr), "err\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", res.ExitCode)
	}

	// fencing: an operation carrying an older epoch than the container's is refused
	if _, err := a.client.Exec(agentclient.WithEpoch(ctx, 2), ctr.ID, wire.ExecRequest{Cmd: []string{"true"}}); !errors.Is(err, agentclient.ErrStaleEpoch) {
		t.Errorf("exec with stale epoch 2: %v, want ErrStaleEpoch", err)
	}
	if _, err := a.client.Exec(agentclient.WithEpoch(ctx, 3), ctr.ID, wire.ExecRequest{Cmd: []string{"true"}}); err != nil {
		t.Errorf("exec with current epoch 3: %v", err)
	}

	// streaming exec: chunks arrive before the process ends
	var mu sync.Mutex
	var chunks []string
	final, err := a.client.ExecStream(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"}}, func(f wire.ExecFrame) error {
		mu.Lock()
		chunks = append(chunks, f.Stream+":"+string(f.Data))
		mu.Unlock()
		return nil
	})
	if err != nil || final.ExitCode != 0 {
		t.Fatalf("ExecStream: %v, exit %d", err, final.ExitCode)
	}
	if len(chunks) != 3 || chunks[0] != "stdout:line1\n" {
		t.Errorf("chunks = %q, want three stdout lines as separate chunks", chunks)
	}

	// timeout really kills
	start := time.Now()
	res, err = a.client.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "sleep 300"}, TimeoutSeconds: 1})
	if err != nil || !res.TimedOut || res.ExitCode != 124 {
		t.Fatalf("Exec with timeout: %v, %+v; want timed out with 124", err, res)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timed-out exec took %s", d)
	}
	res, _ = a.client.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "pgrep -f '^sleep 300' || echo none"}})
	if got := strings.TrimSpace(string(res.Stdout)); got != "none" {
		t.Errorf("after timeout, sleep still runs: %q", got)
	}

	// a file written by dev in the container lands in the home on the host
	res, _ = a.client.Exec(ctx, ctr.ID, wire.ExecRequest{User: "dev", Cmd: []string{"bash", "-c",
		"mkdir -p /home/dev/project && printf 'berth\\n' > /home/dev/project/notes.txt && stat -c '%U' /home/dev/project/notes.txt"}})
	if got, want := string(res.Stdout), "dev\n"; got != want {
		t.Errorf("file owner in container = %q (stderr %q), want %q", got, res.Stderr, want)
	}
	if b, err := os.ReadFile(filepath.Join(a.dataDir, "workspaces", name, "home", "project", "notes.txt")); err != nil || string(b) != "berth\n" {
		t.Errorf("home on the host = %q, %v; want the file in the agent's data dir", b, err)
	}

	// update limits: visible in the container's cgroup
	if err := a.client.Update(ctx, ctr.ID, wire.Resources{CPU: 1, MemoryMB: 512}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	res, _ = a.client.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"}})
	if got, want := strings.TrimSpace(string(res.Stdout)), strconv.Itoa(512<<20); got != want {
		t.Errorf("memory limit in cgroup = %q, want %s", got, want)
	}
	got, err := a.client.Inspect(ctx, ctr.ID)
	if err != nil || got.Resources != (wire.Resources{CPU: 1, MemoryMB: 512}) {
		t.Errorf("Inspect resources = %+v, %v; want 1 CPU, 512 MB", got.Resources, err)
	}

	// stats, list
	if st, err := a.client.Stats(ctx, ctr.ID); err != nil || st.MemoryLimitMB != 512 {
		t.Errorf("Stats = %+v, %v; want memory limit 512", st, err)
	}
	list, err := a.client.List(ctx)
	if err != nil || !containsID(list, ctr.ID) {
		t.Errorf("List misses the container (%v)", err)
	}

	// stop, remove
	if err := a.client.Stop(ctx, ctr.ID, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got, _ := a.client.Inspect(ctx, ctr.ID); got.State != "exited" {
		t.Errorf("after stop state = %q, want exited", got.State)
	}
	if err := a.client.Remove(ctx, ctr.ID, false); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := a.client.Inspect(ctx, ctr.ID); !errors.Is(err, agentclient.ErrNotFound) {
		t.Errorf("Inspect after remove: %v, want ErrNotFound", err)
	}
	metrics, err := a.client.Metrics(ctx)
	if err != nil || !strings.Contains(metrics, `berth_agent_http_request_duration_seconds_count{code="201",method="POST",route="/v1/containers"} 1`) {
		t.Errorf("agent /metrics lacks the create request (%v):\n%.2000s", err, metrics)
	}
	if err := a.client.RemoveData(ctx, "workspaces/"+name); err != nil {
		t.Errorf("RemoveData: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.dataDir, "workspaces", name)); !os.IsNotExist(err) {
		t.Errorf("data dir still there after RemoveData: %v", err)
	}
}

// The agent refuses dangerous requests with 400 and a clear message, and
// leaves nothing behind.
func TestAgentProcessRefusals(t *testing.T) {
	a := startAgent(t)
	ctx := ctxT(t)
	tests := []struct {
		name   string
		mutate func(*wire.CreateContainerRequest)
		want   string
	}{
		{"privileged", func(r *wire.CreateContainerRequest) { r.Privileged = true }, "privileged"},
		{"host network", func(r *wire.CreateContainerRequest) { r.NetworkMode = "host" }, "host"},
		{"host pid", func(r *wire.CreateContainerRequest) { r.PidMode = "host" }, "host"},
		{"mount escape", func(r *wire.CreateContainerRequest) { r.Mounts = []wire.Mount{{Source: "../../etc", Target: "/x"}} }, "data directory"},
		{"absolute mount", func(r *wire.CreateContainerRequest) { r.Mounts = []wire.Mount{{Source: "/etc", Target: "/x"}} }, "data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("berth-test-refuse-%d", time.Now().UnixNano())
			req := wire.CreateContainerRequest{Name: name, Image: testImage(), Start: true}
			tt.mutate(&req)
			_, err := a.client.Create(ctx, req)
			var ae *agentclient.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !errors.Is(err, agentclient.ErrBadRequest) {
				t.Fatalf("Create err = %v, want a 400 bad_request", err)
			}
			if !strings.Contains(ae.Message, tt.want) {
				t.Errorf("message %q does not mention %q", ae.Message, tt.want)
			}
			list, _ := a.client.List(ctx)
			for _, c := range list {
				if c.Name == name {
					t.Errorf("refused container %s exists", name)
				}
			}
		})
	}
	if err := a.client.RemoveData(ctx, "../etc"); !errors.Is(err, agentclient.ErrBadRequest) {
		t.Errorf("RemoveData(../etc) = %v, want ErrBadRequest", err)
	}
	_, err := a.client.Create(ctx, wire.CreateContainerRequest{Name: "berth-test-noimage", Image: "berth/none:nope", Start: true})
	if !errors.Is(err, agentclient.ErrImageNotFound) {
		t.Errorf("Create with a missing image = %v, want ErrImageNotFound", err)
	}
}

// A container killed outside berth shows up on the event stream.
func TestAgentProcessEvents(t *testing.T) {
	a := startAgent(t)
	ctx := ctxT(t)
	evctx, stop := context.WithCancel(ctx)
	defer stop()
	opened := make(chan struct{})
	events := make(chan wire.ContainerEvent, 64)
	go a.client.Events(evctx, func() { close(opened) }, func(ev wire.ContainerEvent) { events <- ev })
	<-opened
	name := fmt.Sprintf("berth-test-ev-%d", time.Now().UnixNano())
	ctr, err := a.client.Create(ctx, wire.CreateContainerRequest{Name: name, Image: testImage(), Start: true, WorkspaceID: "ev1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.client.Remove(context.Background(), ctr.ID, true) })
	if out, err := exec.Command("docker", "kill", ctr.ID).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v %s", err, out)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.ContainerID == ctr.ID && ev.Action == "die" {
				if ev.WorkspaceID != "ev1" || ev.ExitCode != 137 {
					t.Errorf("die event = %+v, want workspace ev1 and exit 137", ev)
				}
				return
			}
		case <-deadline:
			t.Fatal("no die event within 10s")
		}
	}
}

func containsID(cs []wire.Container, id string) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}
