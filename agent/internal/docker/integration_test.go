package docker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"
)

// TestLifecycle walks one workspace container through create (with a home
// mount) → exec → update → stats → list → stop → remove.
func TestLifecycle(t *testing.T) {
	c := newTestClient(t)
	ctx := testCtx(t)
	ws := "ws-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	homeSrc := ws + "/home"
	ctr := startContainer(t, c, func(r *wire.CreateContainerRequest) {
		r.Labels = map[string]string{wire.LabelUserID: "user-1", wire.LabelManaged: "false"}
		r.Mounts = []wire.Mount{{Source: homeSrc, Target: "/home/dev"}}
		r.Env = map[string]string{"FOO": "bar"}
		r.WorkspaceID = ws
		r.Epoch = 7
	})
	hostHome := filepath.Join(c.DataDir(), homeSrc)

	t.Run("create", func(t *testing.T) {
		if got, want := ctr.State, "running"; got != want {
			t.Errorf("state: got %q, want %q", got, want)
		}
		wantLabels := map[string]string{
			wire.LabelUserID: "user-1", wire.LabelManaged: "true", wire.LabelServerID: "test-server",
			wire.LabelEpoch: "7", wire.LabelPodexWorkspace: "true", wire.LabelWorkspaceID: ws,
		}
		got := map[string]string{}
		for k := range wantLabels {
			if v, ok := ctr.Labels[k]; ok {
				got[k] = v
			}
		}
		if diff := cmp.Diff(wantLabels, got); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wire.Resources{CPU: 1, MemoryMB: 512}, ctr.Resources); diff != "" {
			t.Errorf("resources (-want +got):\n%s", diff)
		}
		raw, err := c.api.ContainerInspect(ctx, ctr.ID)
		if err != nil {
			t.Fatal(err)
		}
		hc := raw.HostConfig
		if hc.NanoCPUs != 1e9 || hc.Memory != 512<<20 || hc.MemorySwap != 512<<20 {
			t.Errorf("limits: got NanoCPUs %d Memory %d MemorySwap %d, want 1e9, 512 MiB, 512 MiB", hc.NanoCPUs, hc.Memory, hc.MemorySwap)
		}
		if hc.Privileged || hc.Init == nil || !*hc.Init {
			t.Errorf("got Privileged %v Init %v, want false and true", hc.Privileged, hc.Init)
		}
		if len(raw.Mounts) != 1 || raw.Mounts[0].Source != hostHome || raw.Mounts[0].Destination != "/home/dev" || !raw.Mounts[0].RW {
			t.Errorf("mounts: got %+v, want %s → /home/dev rw", raw.Mounts, hostHome)
		}
		fi, err := os.Stat(hostHome)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o755 || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("home dir: got dir=%v mode %v owner %d:%d, want dir 0755 1000:1000", fi.IsDir(), fi.Mode().Perm(), st.Uid, st.Gid)
		}
	})

	t.Run("exec", func(t *testing.T) {
		user := "dev"
		if run(t, c, ctr.ID, wire.ExecRequest{Cmd: []string{"id", "-u", "dev"}}).code != 0 {
			user = "nobody"
			t.Logf("image %s has no user dev; checking the user switch with %q", testImage(), user)
		}
		tests := []struct {
			name string
			req  wire.ExecRequest
			want execOut
		}{
			{
				name: "stdout and stderr apart, exit code",
				req:  wire.ExecRequest{Cmd: []string{"bash", "-c", "echo out; echo err >&2; exit 3"}},
				want: execOut{code: 3, stdout: "out\n", stderr: "err\n"},
			},
			{
				name: "working dir",
				req:  wire.ExecRequest{Cmd: []string{"pwd"}, WorkingDir: "/tmp"},
				want: execOut{stdout: "/tmp\n"},
			},
			{
				name: "env from container and request",
				req:  wire.ExecRequest{Cmd: []string{"bash", "-c", "echo $FOO $BAR"}, Env: map[string]string{"BAR": "baz"}},
				want: execOut{stdout: "bar baz\n"},
			},
			{
				name: "stdin",
				req:  wire.ExecRequest{Cmd: []string{"cat"}, Stdin: []byte("hello\nworld")},
				want: execOut{stdout: "hello\nworld"},
			},
			{
				name: "user",
				req:  wire.ExecRequest{Cmd: []string{"id", "-un"}, User: user},
				want: execOut{stdout: user + "\n"},
			},
			{
				name: "home mount is the host dir",
				req:  wire.ExecRequest{Cmd: []string{"bash", "-c", "echo from-container > /home/dev/probe && stat -c %u:%g /home/dev"}},
				want: execOut{stdout: "1000:1000\n"},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := run(t, c, ctr.ID, tt.req)
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(execOut{})); diff != "" {
					t.Errorf("exec (-want +got):\n%s", diff)
				}
			})
		}
		b, err := os.ReadFile(filepath.Join(hostHome, "probe"))
		if err != nil || string(b) != "from-container\n" {
			t.Errorf("host side of the home mount: got %q, %v, want %q", b, err, "from-container\n")
		}
	})

	t.Run("exec streams output as it arrives", func(t *testing.T) {
		first := make(chan struct{})
		w := &signalWriter{match: "first\n", signal: first}
		done := make(chan error, 1)
		var code int
		go func() {
			var err error
			code, _, err = c.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c",
				"echo first; while [ ! -e /tmp/go-on ]; do sleep 0.05; done; echo second"}}, nil, w, nil)
			done <- err
		}()
		select {
		case <-first:
		case err := <-done:
			t.Fatalf("exec returned (%v) before its first line was seen", err)
		case <-time.After(30 * time.Second):
			t.Fatal("first line not seen within 30s")
		}
		select {
		case err := <-done:
			t.Fatalf("exec returned (%v) while its process was waiting", err)
		default:
		}
		sh(t, c, ctr.ID, "touch /tmp/go-on")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got, want := w.String(), "first\nsecond\n"; got != want || code != 0 {
			t.Errorf("got %q exit %d, want %q exit 0", got, code, want)
		}
	})

	t.Run("update", func(t *testing.T) {
		if err := c.Update(ctx, ctr.ID, wire.Resources{CPU: 0.5, MemoryMB: 256}); err != nil {
			t.Fatal(err)
		}
		raw, err := c.api.ContainerInspect(ctx, ctr.ID)
		if err != nil {
			t.Fatal(err)
		}
		hc := raw.HostConfig
		if hc.NanoCPUs != 5e8 || hc.Memory != 256<<20 || hc.MemorySwap != 256<<20 {
			t.Errorf("inspect: got NanoCPUs %d Memory %d MemorySwap %d, want 5e8, 256 MiB, 256 MiB", hc.NanoCPUs, hc.Memory, hc.MemorySwap)
		}
		// cgroup v1 first, then v2.
		mem := sh(t, c, ctr.ID, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		if want := strconv.Itoa(256 << 20); mem != want {
			t.Errorf("memory limit in the container's cgroup: got %s, want %s", mem, want)
		}
		cpu := sh(t, c, ctr.ID, "if [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); else cat /sys/fs/cgroup/cpu.max; fi")
		if want := "50000 100000"; cpu != want {
			t.Errorf("cpu quota in the container's cgroup: got %q, want %q", cpu, want)
		}
		if err := c.Update(ctx, ctr.ID, wire.Resources{CPU: -1}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("negative cpu: got %v, want ErrBadRequest", err)
		}
	})

	t.Run("stats", func(t *testing.T) {
		before := time.Now()
		s, err := c.Stats(ctx, ctr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.CPULimitCores != 0.5 || s.MemoryLimitMB != 256 {
			t.Errorf("limits: got %v cores %d MB, want 0.5 and 256", s.CPULimitCores, s.MemoryLimitMB)
		}
		if s.MemoryUsedMB < 0 || s.MemoryUsedMB > 256 || s.MemoryPercent < 0 || s.MemoryPercent > 100 {
			t.Errorf("memory: got %d MB %v %%, want within the limit", s.MemoryUsedMB, s.MemoryPercent)
		}
		if s.CPUPercent < 0 || s.UptimeSeconds < 0 || s.CollectedAt.Before(before.Add(-time.Second)) {
			t.Errorf("got cpu %v%% uptime %ds collected %v, want ≥ 0, ≥ 0, after %v", s.CPUPercent, s.UptimeSeconds, s.CollectedAt, before)
		}
	})

	t.Run("inspect and list", func(t *testing.T) {
		got, err := c.Inspect(ctx, ctr.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != ctr.ID || got.State != "running" || !strings.HasPrefix(got.Status, "Up") || got.StartedAt.IsZero() {
			t.Errorf("inspect by name: got %+v", got)
		}
		if diff := cmp.Diff(wire.Resources{CPU: 0.5, MemoryMB: 256}, got.Resources); diff != "" {
			t.Errorf("resources after update (-want +got):\n%s", diff)
		}
		list, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range list {
			if l.Labels[wire.LabelManaged] != "true" {
				t.Errorf("List returned %s without %s=true", l.Name, wire.LabelManaged)
			}
			if l.ID == ctr.ID {
				found = true
				if diff := cmp.Diff(got.Resources, l.Resources); diff != "" {
					t.Errorf("listed resources (-inspect +list):\n%s", diff)
				}
			}
		}
		if !found {
			t.Errorf("List: %s missing", ctr.ID)
		}
	})

	t.Run("stop", func(t *testing.T) {
		if err := c.Remove(ctx, ctr.ID, false); !errors.Is(err, ErrConflict) {
			t.Errorf("remove of a running container without force: got %v, want ErrConflict", err)
		}
		if err := c.Stop(ctx, ctr.ID, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		got, err := c.Inspect(ctx, ctr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != "exited" || got.FinishedAt.IsZero() {
			t.Errorf("after stop: got state %q finished %v, want exited", got.State, got.FinishedAt)
		}
		if err := c.Stop(ctx, ctr.ID, time.Second); err != nil {
			t.Errorf("second stop: got %v, want nil (idempotent)", err)
		}
		if _, _, err := c.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil); !errors.Is(err, ErrConflict) {
			t.Errorf("exec in a stopped container: got %v, want ErrConflict", err)
		}
		s, err := c.Stats(ctx, ctr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.UptimeSeconds != 0 || s.CPUPercent != 0 {
			t.Errorf("stats of a stopped container: got uptime %d cpu %v, want 0", s.UptimeSeconds, s.CPUPercent)
		}
	})

	t.Run("remove", func(t *testing.T) {
		if err := c.Remove(ctx, ctr.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Inspect(ctx, ctr.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("inspect after remove: got %v, want ErrNotFound", err)
		}
		if err := c.Remove(ctx, ctr.ID, true); !errors.Is(err, ErrNotFound) {
			t.Errorf("second remove: got %v, want ErrNotFound", err)
		}
		if _, err := os.Stat(filepath.Join(hostHome, "probe")); err != nil {
			t.Errorf("home data must survive the container: %v", err)
		}
	})
}

// signalWriter collects output and closes signal once it holds match.
type signalWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	match  string
	signal chan struct{}
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.match) {
		w.once.Do(func() { close(w.signal) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestCreateRefused checks that forbidden requests are refused with
// ErrBadRequest before anything is created.
func TestCreateRefused(t *testing.T) {
	c := newTestClient(t)
	ctx := testCtx(t)
	if err := os.Symlink("/etc", filepath.Join(c.DataDir(), "evil")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*wire.CreateContainerRequest)
		want   error
	}{
		{"privileged", func(r *wire.CreateContainerRequest) { r.Privileged = true }, ErrBadRequest},
		{"host network", func(r *wire.CreateContainerRequest) { r.NetworkMode = "host" }, ErrBadRequest},
		{"host pid", func(r *wire.CreateContainerRequest) { r.PidMode = "host" }, ErrBadRequest},
		{"host ipc", func(r *wire.CreateContainerRequest) { r.IpcMode = "host" }, ErrBadRequest},
		{"mount ../etc", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "../etc", Target: "/mnt"}}
		}, ErrBadRequest},
		{"mount /etc", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "/etc", Target: "/mnt"}}
		}, ErrBadRequest},
		{"mount through a symlink pointing outside", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "evil", Target: "/mnt"}}
		}, ErrBadRequest},
		{"mount below a symlink pointing outside", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "evil/berth-new", Target: "/mnt"}}
		}, ErrBadRequest},
		{"relative mount target", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "ok", Target: "mnt"}}
		}, ErrBadRequest},
		{"empty image", func(r *wire.CreateContainerRequest) { r.Image = "" }, ErrBadRequest},
		{"missing image", func(r *wire.CreateContainerRequest) { r.Image = "berth-test/no-such-image:never" }, ErrImageNotFound},
		{"start fails", func(r *wire.CreateContainerRequest) { r.User = "berth-no-such-user" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := baseRequest(testName(t, c))
			tt.mutate(&req)
			_, err := c.Create(ctx, req)
			switch {
			case err == nil:
				t.Errorf("got nil error, want %v", tt.want)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("got %v, want %v", err, tt.want)
			}
			assertGone(t, c, req.Name)
		})
	}
	if _, err := os.Stat("/etc/berth-new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused mount created /etc/berth-new (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(), "ok")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused request created a mount dir (stat: %v)", err)
	}

	t.Run("name conflict", func(t *testing.T) {
		req := baseRequest(testName(t, c))
		req.Start = false
		if _, err := c.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(ctx, req); !errors.Is(err, ErrConflict) {
			t.Errorf("second create: got %v, want ErrConflict", err)
		}
	})
}

// TestUnmanagedContainerRefused checks that a container without
// berth.managed=true is invisible to every per-container method.
func TestUnmanagedContainerRefused(t *testing.T) {
	c := newTestClient(t)
	ctx := testCtx(t)
	name := testName(t, c)
	created, err := c.api.ContainerCreate(ctx, &container.Config{
		Image: testImage(), Cmd: []string{"sleep", "infinity"}, Labels: map[string]string{wire.LabelManaged: "false"},
	}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Inspect", func() error { _, err := c.Inspect(ctx, name); return err }},
		{"Start", func() error { return c.Start(ctx, created.ID) }},
		{"Stop", func() error { return c.Stop(ctx, name, 0) }},
		{"Update", func() error { return c.Update(ctx, name, wire.Resources{CPU: 1}) }},
		{"Exec", func() error {
			_, _, err := c.Exec(ctx, name, wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil)
			return err
		}},
		{"Stats", func() error { _, err := c.Stats(ctx, name); return err }},
		{"Remove", func() error { return c.Remove(ctx, name, true) }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
		})
	}
	raw, err := c.api.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatalf("the unmanaged container must still exist: %v", err)
	}
	if raw.State.Status != container.StateCreated {
		t.Errorf("unmanaged container state: got %q, want %q (untouched)", raw.State.Status, container.StateCreated)
	}
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.ID == created.ID {
			t.Errorf("List returned the unmanaged container %s", name)
		}
	}
}

// TestExecTimeoutKillsProcesses checks that a timed-out or cancelled exec
// really kills its process and all descendants.
func TestExecTimeoutKillsProcesses(t *testing.T) {
	c := newTestClient(t)
	ctr := startContainer(t, c, nil)
	tests := []struct {
		name    string
		cmd     string
		timeout int           // exec timeout, seconds
		ctxTime time.Duration // caller's deadline instead, when > 0
		wantErr error
	}{
		{name: "single process", cmd: "sleep 300", timeout: 1},
		{name: "process tree", cmd: "sleep 300 & sleep 300 & bash -c 'sleep 300; true'; wait", timeout: 1},
		{name: "caller's context ends", cmd: "sleep 300 & sleep 300; wait", ctxTime: time.Second, wantErr: ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			if tt.ctxTime > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTime)
				defer cancel()
			}
			var stdout bytes.Buffer
			start := time.Now()
			code, timedOut, err := c.Exec(ctx, ctr.ID, wire.ExecRequest{
				Cmd: []string{"bash", "-c", "echo started; " + tt.cmd}, TimeoutSeconds: tt.timeout,
			}, nil, &stdout, nil)
			elapsed := time.Since(start)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if code != ExecTimeoutExitCode || !timedOut {
				t.Errorf("got exit %d timedOut %v, want %d true", code, timedOut, ExecTimeoutExitCode)
			}
			if stdout.String() != "started\n" {
				t.Errorf("stdout: got %q, want %q", stdout.String(), "started\n")
			}
			if elapsed > 20*time.Second {
				t.Errorf("exec returned after %v; the kill did not end it", elapsed)
			}
			t.Logf("returned after %v", elapsed.Round(time.Millisecond))
			if left := sleepers(t, c, ctr.ID); left != "" {
				t.Errorf("processes left after the kill: %q; want none", left)
			}
		})
	}
}

// TestEvents checks that killing a berth container produces its die event
// with the exit code.
func TestEvents(t *testing.T) {
	c := newTestClient(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	events, errs := c.Events(ctx)
	ws := "ws-events"
	ctr := startContainer(t, c, func(r *wire.CreateContainerRequest) { r.WorkspaceID = ws })
	if err := rawSDK(c).ContainerKill(ctx, ctr.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	var actions []string
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("event stream closed: %v", <-errs)
			}
			if ev.ContainerID != ctr.ID {
				continue
			}
			actions = append(actions, ev.Action)
			if ev.WorkspaceID != ws || ev.Labels[wire.LabelManaged] != "true" || ev.Time.IsZero() {
				t.Errorf("event %s: got workspace %q labels %v time %v", ev.Action, ev.WorkspaceID, ev.Labels, ev.Time)
			}
			if ev.Action != "die" {
				continue
			}
			if ev.ExitCode != 137 {
				t.Errorf("die exit code: got %d, want 137", ev.ExitCode)
			}
			if diff := cmp.Diff([]string{"create", "start", "kill", "die"}, actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			cancel()
			for range events { // the stream must close once ctx ends
			}
			return
		case err := <-errs:
			t.Fatalf("event stream failed: %v", err)
		case <-deadline:
			t.Fatalf("no die event within 30s; saw %v", actions)
		}
	}
}

func TestImagesAndPull(t *testing.T) {
	c := newTestClient(t)
	ctx := testCtx(t)
	images, err := c.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := testImage()
	found := false
	for _, img := range images {
		for _, tag := range img.Tags {
			found = found || tag == want
		}
	}
	if !found {
		t.Errorf("Images: %s missing from %d images", want, len(images))
	}

	tests := []struct {
		name string
		ref  string
		want []error // any of
	}{
		{"malformed reference", "Not A Valid/ref!!", []error{ErrBadRequest}},
		// No registry is reachable here, and with one the repository does
		// not exist: either way the daemon refuses.
		{"unpullable image", "berth-test-nonexistent/none:0", []error{ErrDocker, ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var progress []wire.PullProgress
			err := c.Pull(ctx, tt.ref, func(p wire.PullProgress) { progress = append(progress, p) })
			for _, w := range tt.want {
				if errors.Is(err, w) {
					return
				}
			}
			t.Errorf("got %v (progress %v), want one of %v", err, progress, tt.want)
		})
	}
}

func TestInfo(t *testing.T) {
	c := newTestClient(t)
	info, err := c.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ServerVersion == "" || !filepath.IsAbs(info.DataRoot) || info.CPUs < 1 || info.MemoryTotal <= 0 || info.Images < 1 {
		t.Errorf("got %+v, want version, absolute data root, cpus, memory and at least the test image", info)
	}
	containers, running, images, err := c.Counts(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if running > containers || images < 1 {
		t.Errorf("counts: got containers %d running %d images %d", containers, running, images)
	}
}

func TestNewRefusesTCP(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"tcp host", Options{Host: "tcp://127.0.0.1:2375", DataDir: t.TempDir(), ServerID: "s"}},
		{"relative data dir", Options{Host: "unix://" + testSocket, DataDir: "data", ServerID: "s"}},
		{"no server id", Options{Host: "unix://" + testSocket, DataDir: t.TempDir()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(context.Background(), tt.opts, nil); !errors.Is(err, ErrBadRequest) {
				t.Errorf("got %v, want ErrBadRequest", err)
			}
		})
	}
}

// sleepers lists the container's processes whose command line holds
// "sleep 300", with `pgrep -f` when the image has procps, else by reading
// /proc (the pattern is written so that the scanning grep does not match).
func sleepers(t *testing.T, c *Client, id string) string {
	t.Helper()
	if run(t, c, id, wire.ExecRequest{Cmd: []string{"bash", "-c", "command -v pgrep"}}).code == 0 {
		got := run(t, c, id, wire.ExecRequest{Cmd: []string{"pgrep", "-a", "-f", "sleep 300"}, User: "root"})
		if got.code > 1 {
			t.Fatalf("pgrep: exit %d, stderr %q", got.code, got.stderr)
		}
		return strings.TrimSpace(got.stdout)
	}
	t.Logf("image %s has no pgrep; scanning /proc instead", testImage())
	return sh(t, c, id, `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done | grep -E "sleep [3]00" || true`)
}
