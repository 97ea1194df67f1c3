package dockerfake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"berth/agent/internal/capacity"
	"berth/agent/internal/docker"
	"berth/agent/internal/docker/dockerfake"
	"berth/agent/internal/fence"
	"berth/agent/internal/server"
	"berth/shared/wire"

	"github.com/google/go-cmp/cmp"
)

// The fake stands in for the adapter wherever the agent uses one.
var (
	_ server.Docker        = (*dockerfake.Fake)(nil)
	_ fence.Docker         = (*dockerfake.Fake)(nil)
	_ capacity.DockerFacts = (*dockerfake.Fake)(nil)
	_ dockerfake.ExecFunc  = dockerfake.EchoExec
)

var (
	ctx        = context.Background()
	startedReq = wire.CreateContainerRequest{Name: "ws-1", Image: "berth/workspace:dev", Start: true,
		WorkspaceID: "w1", Epoch: 4, Resources: wire.Resources{CPU: 2, MemoryMB: 2048}}
)

// event is the part of a ContainerEvent the tests compare.
type event struct {
	Action string
	Exit   int
}

// collect reads n events from evs, failing the test after a deadline.
func collect(t *testing.T, evs <-chan wire.ContainerEvent, n int) []event {
	t.Helper()
	var got []event
	deadline := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("stream closed after %v, want %d events", got, n)
			}
			got = append(got, event{ev.Action, ev.ExitCode})
		case <-deadline:
			t.Fatalf("got %v within 5s, want %d events", got, n)
		}
	}
	return got
}

func mustCreate(t *testing.T, f *dockerfake.Fake, req wire.CreateContainerRequest) wire.Container {
	t.Helper()
	c, err := f.Create(ctx, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return c
}

func TestLifecycleEvents(t *testing.T) {
	f := dockerfake.New("srv-1")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first, _ := f.Events(sctx)
	second, _ := f.Events(sctx)

	c := mustCreate(t, f, startedReq)
	steps := []struct {
		name string
		do   func() error
	}{
		{"stop", func() error { return f.Stop(ctx, c.ID, time.Second) }},
		{"stop again is a no-op", func() error { return f.Stop(ctx, c.ID, time.Second) }},
		{"start", func() error { return f.Start(ctx, c.ID) }},
		{"start again is a no-op", func() error { return f.Start(ctx, c.ID) }},
		{"exit on its own", func() error { return f.Exit(c.ID, 3) }},
		{"start by name", func() error { return f.Start(ctx, "ws-1") }},
		{"oom", func() error { return f.OOM(c.ID) }},
		{"remove", func() error { return f.Remove(ctx, c.ID, false) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	want := []event{
		{"create", 0}, {"start", 0},
		{"kill", 0}, {"die", 143}, {"stop", 0},
		{"start", 0},
		{"die", 3},
		{"start", 0},
		{"oom", 0}, {"die", 137},
		{"destroy", 0},
	}
	for name, evs := range map[string]<-chan wire.ContainerEvent{"first": first, "second": second} {
		if diff := cmp.Diff(want, collect(t, evs, len(want))); diff != "" {
			t.Errorf("%s subscriber's events (-want +got):\n%s", name, diff)
		}
	}
	if n := len(f.Containers()); n != 0 {
		t.Errorf("got %d containers after the removal, want 0", n)
	}
}

func TestEventCarriesLabels(t *testing.T) {
	f := dockerfake.New("srv-1")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, _ := f.Events(sctx)
	c := mustCreate(t, f, startedReq)
	ev := <-evs
	if ev.ContainerID != c.ID || ev.WorkspaceID != "w1" || ev.Labels[wire.LabelEpoch] != "4" || ev.Time.IsZero() {
		t.Errorf("got %+v, want the create of %s for w1 with its labels and a time", ev, c.ID)
	}
}

func TestCreate(t *testing.T) {
	f := dockerfake.New("srv-1")
	req := startedReq
	req.Labels = map[string]string{wire.LabelManaged: "false", wire.LabelUserID: "u1"}
	c := mustCreate(t, f, req)
	wantLabels := map[string]string{
		wire.LabelManaged: "true", wire.LabelServerID: "srv-1", wire.LabelEpoch: "4",
		wire.LabelPodexWorkspace: "true", wire.LabelWorkspaceID: "w1", wire.LabelUserID: "u1",
	}
	if diff := cmp.Diff(wantLabels, c.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if len(c.ID) != 64 || c.State != "running" || c.StartedAt.IsZero() || c.CreatedAt.IsZero() || c.IPAddress == "" {
		t.Errorf("got %+v, want a 64-hex id, running, with times and an address", c)
	}
	if c.Resources != req.Resources {
		t.Errorf("resources: got %+v, want %+v", c.Resources, req.Resources)
	}
	got, err := f.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("inspect differs from create (-create +inspect):\n%s", diff)
	}
	got.Labels["mutated"] = "yes"
	if again, _ := f.Inspect(ctx, c.ID); again.Labels["mutated"] != "" {
		t.Error("a caller's change to the returned labels reached the fake")
	}
	created := mustCreate(t, f, wire.CreateContainerRequest{Name: "ws-2", Image: "img"})
	if created.State != "created" || !created.StartedAt.IsZero() {
		t.Errorf("got %+v, want created and never started", created)
	}
	if list := f.Containers(); len(list) != 2 || list[0].Name != "ws-1" || list[1].Name != "ws-2" {
		t.Errorf("got %+v, want ws-1 then ws-2 (oldest first)", list)
	}
}

// The fake refuses what the adapter refuses, with the adapter's sentinels.
func TestRefusals(t *testing.T) {
	f := dockerfake.New("srv-1")
	running := mustCreate(t, f, startedReq)
	stopped := mustCreate(t, f, wire.CreateContainerRequest{Name: "stopped", Image: "img"})
	create := func(mutate func(*wire.CreateContainerRequest)) func() error {
		return func() error {
			req := wire.CreateContainerRequest{Name: "new", Image: "img"}
			mutate(&req)
			_, err := f.Create(ctx, req)
			return err
		}
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"privileged", create(func(r *wire.CreateContainerRequest) { r.Privileged = true }), docker.ErrBadRequest},
		{"host network", create(func(r *wire.CreateContainerRequest) { r.NetworkMode = "host" }), docker.ErrBadRequest},
		{"host pid", create(func(r *wire.CreateContainerRequest) { r.PidMode = "host" }), docker.ErrBadRequest},
		{"container ipc", create(func(r *wire.CreateContainerRequest) { r.IpcMode = "container:x" }), docker.ErrBadRequest},
		{"mount escaping", create(func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "../etc", Target: "/x"}}
		}), docker.ErrBadRequest},
		{"no image", create(func(r *wire.CreateContainerRequest) { r.Image = "" }), docker.ErrBadRequest},
		{"name in use", create(func(r *wire.CreateContainerRequest) { r.Name = "ws-1" }), docker.ErrConflict},
		{"missing container", func() error { return f.Start(ctx, "nope") }, docker.ErrNotFound},
		{"empty id", func() error { _, err := f.Inspect(ctx, ""); return err }, docker.ErrBadRequest},
		{"remove running without force", func() error { return f.Remove(ctx, running.ID, false) }, docker.ErrConflict},
		{"exec into a stopped container", func() error {
			_, _, err := f.Exec(ctx, stopped.ID, wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil)
			return err
		}, docker.ErrConflict},
		{"exec without a command", func() error {
			_, _, err := f.Exec(ctx, running.ID, wire.ExecRequest{}, nil, nil, nil)
			return err
		}, docker.ErrBadRequest},
		{"negative update", func() error { return f.Update(ctx, running.ID, wire.Resources{CPU: -1}) }, docker.ErrBadRequest},
		{"exit of a stopped container", func() error { return f.Exit(stopped.ID, 1) }, docker.ErrConflict},
		{"data path escaping", func() error { return f.RemoveData("../etc") }, docker.ErrBadRequest},
		{"absolute data path", func() error { return f.RemoveData("/etc") }, docker.ErrBadRequest},
		{"malformed image", func() error { return f.Pull(ctx, "bad ref!", nil) }, docker.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if n := len(f.Containers()); n != 2 {
		t.Errorf("got %d containers, want the 2 made before the refusals", n)
	}
}

func TestRequireImages(t *testing.T) {
	f := dockerfake.New("srv-1")
	req := wire.CreateContainerRequest{Name: "a", Image: "alpine:3"}
	if _, err := f.Create(ctx, req); err != nil {
		t.Fatalf("any image is accepted by default: %v", err)
	}
	f.RequireImages(true)
	req.Name = "b"
	if _, err := f.Create(ctx, req); !errors.Is(err, docker.ErrImageNotFound) {
		t.Fatalf("got %v, want ErrImageNotFound", err)
	}
	if err := f.Pull(ctx, "alpine:3", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Create(ctx, req); err != nil {
		t.Errorf("after the pull: %v", err)
	}
	req.Name, req.Image = "c", "berth/workspace:dev"
	if _, err := f.Create(ctx, req); err != nil {
		t.Errorf("the image the fake starts with: %v", err)
	}
}

func TestFailCreate(t *testing.T) {
	f := dockerfake.New("srv-1")
	injected := fmt.Errorf("%w: injected", docker.ErrStartFailed)
	req := func(name string) wire.CreateContainerRequest {
		return wire.CreateContainerRequest{Name: name, Image: "img"}
	}

	f.FailNextCreate(injected)
	if _, err := f.Create(ctx, req("a")); !errors.Is(err, docker.ErrStartFailed) {
		t.Errorf("first create: got %v, want the injected error", err)
	}
	if _, err := f.Create(ctx, req("a")); err != nil {
		t.Errorf("second create: got %v, want success (the failure was for the next one only)", err)
	}
	f.FailCreate(injected)
	for _, name := range []string{"b", "c"} {
		if _, err := f.Create(ctx, req(name)); !errors.Is(err, docker.ErrStartFailed) {
			t.Errorf("create %s: got %v, want the injected error", name, err)
		}
	}
	if _, err := f.Create(ctx, wire.CreateContainerRequest{Name: "d", Image: "img", Privileged: true}); !errors.Is(err, docker.ErrBadRequest) {
		t.Errorf("a refused request: got %v, want ErrBadRequest (validation first)", err)
	}
	f.FailCreate(nil)
	if _, err := f.Create(ctx, req("b")); err != nil {
		t.Errorf("after clearing: %v", err)
	}
	if n := len(f.Containers()); n != 2 {
		t.Errorf("got %d containers, want 2 (failed creates leave nothing)", n)
	}
}

func TestUpdate(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	if err := f.Update(ctx, c.ID, wire.Resources{MemoryMB: 4096}); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Inspect(ctx, c.ID)
	if want := (wire.Resources{CPU: 2, MemoryMB: 4096}); got.Resources != want {
		t.Errorf("got %+v, want %+v (a zero field is unchanged)", got.Resources, want)
	}
	f.FailUpdate(fmt.Errorf("%w: injected", docker.ErrDocker))
	if err := f.Update(ctx, c.ID, wire.Resources{CPU: 1}); !errors.Is(err, docker.ErrDocker) {
		t.Errorf("got %v, want the injected error", err)
	}
	if err := f.Update(ctx, "nope", wire.Resources{CPU: 1}); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("missing container: got %v, want ErrNotFound before the injected failure", err)
	}
	if got, _ := f.Inspect(ctx, c.ID); got.Resources.CPU != 2 {
		t.Errorf("a failed update changed the limits to %+v", got.Resources)
	}
}

func TestExec(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	run := func(req wire.ExecRequest) (code int, timedOut bool, stdout, stderr string, err error) {
		var o, e bytes.Buffer
		code, timedOut, err = f.Exec(ctx, c.ID, req, nil, &o, &e)
		return code, timedOut, o.String(), e.String(), err
	}
	code, timedOut, stdout, _, err := run(wire.ExecRequest{Cmd: []string{"echo", "hi"}})
	if err != nil || code != 0 || timedOut || stdout != "echo hi\n" {
		t.Errorf("default: got %d %v %q %v, want 0 false \"echo hi\\n\" nil", code, timedOut, stdout, err)
	}

	f.SetExec(func(_ context.Context, got wire.Container, req wire.ExecRequest, stdout, stderr io.Writer) (int, error) {
		fmt.Fprintf(stdout, "in %s", got.Name)
		fmt.Fprint(stderr, "oops")
		return 7, nil
	})
	code, _, stdout, stderr, err := run(wire.ExecRequest{Cmd: []string{"x"}})
	if err != nil || code != 7 || stdout != "in ws-1" || stderr != "oops" {
		t.Errorf("hook: got %d %q %q %v, want 7 \"in ws-1\" \"oops\" nil", code, stdout, stderr, err)
	}

	f.SetExec(func(ctx context.Context, _ wire.Container, _ wire.ExecRequest, _, _ io.Writer) (int, error) {
		<-ctx.Done() // a process that never ends by itself
		return 0, nil
	})
	code, timedOut, _, _, err = run(wire.ExecRequest{Cmd: []string{"sleep"}, TimeoutSeconds: 1})
	if err != nil || code != docker.ExecTimeoutExitCode || !timedOut {
		t.Errorf("timeout: got %d %v %v, want %d true nil", code, timedOut, err, docker.ExecTimeoutExitCode)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	code, timedOut, err = f.Exec(cctx, c.ID, wire.ExecRequest{Cmd: []string{"sleep"}}, nil, nil, nil)
	if !errors.Is(err, context.Canceled) || code != docker.ExecTimeoutExitCode || !timedOut {
		t.Errorf("cancelled: got %d %v %v, want %d true context.Canceled", code, timedOut, err, docker.ExecTimeoutExitCode)
	}

	f.SetExec(nil)
	if _, _, stdout, _, _ := run(wire.ExecRequest{Cmd: []string{"back"}}); stdout != "back\n" {
		t.Errorf("after SetExec(nil): got %q, want the echo again", stdout)
	}
}

func TestExecInput(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	var seen []string
	f.SetExecIO(func(_ context.Context, _ wire.Container, req wire.ExecRequest, stdin io.Reader, stdout, _ io.Writer) (int, error) {
		in, err := io.ReadAll(stdin)
		seen = append(seen, fmt.Sprintf("%q in the request, %q streamed", req.Stdin, in))
		if err != nil {
			return 0, err
		}
		_, err = stdout.Write(in)
		return 0, err
	})
	tests := []struct {
		name    string
		req     wire.ExecRequest
		stdin   io.Reader
		want    string
		wantErr error
	}{
		{name: "streamed", req: wire.ExecRequest{Cmd: []string{"cat"}}, stdin: strings.NewReader("abc"), want: "abc"},
		{name: "in the request, streamed to the hook", req: wire.ExecRequest{Cmd: []string{"cat"}, Stdin: []byte("xyz")}, want: "xyz"},
		{name: "none: an empty input", req: wire.ExecRequest{Cmd: []string{"cat"}}, want: ""},
		{name: "both", req: wire.ExecRequest{Cmd: []string{"cat"}, Stdin: []byte("x")}, stdin: strings.NewReader("y"),
			wantErr: docker.ErrBadRequest},
		{name: "an input that breaks off", req: wire.ExecRequest{Cmd: []string{"cat"}},
			stdin: io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(io.ErrUnexpectedEOF)), wantErr: docker.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, _, err := f.Exec(ctx, c.ID, tt.req, tt.stdin, &out, nil)
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && out.String() != tt.want {
				t.Errorf("got %q, %v; want %q, %v", out.String(), err, tt.want, tt.wantErr)
			}
		})
	}
	if want := `"" in the request, "xyz" streamed`; seen[1] != want {
		t.Errorf("the IO hook saw %s, want %s", seen[1], want)
	}

	var got []byte
	f.SetExec(func(_ context.Context, _ wire.Container, req wire.ExecRequest, _, _ io.Writer) (int, error) {
		got = req.Stdin
		return 0, nil
	})
	if _, _, err := f.Exec(ctx, c.ID, wire.ExecRequest{Cmd: []string{"cat"}}, strings.NewReader("whole"), nil, nil); err != nil || string(got) != "whole" {
		t.Errorf("a SetExec hook saw %q (%v), want the streamed input whole in req.Stdin", got, err)
	}
	f.SetExec(nil)
}

func TestStats(t *testing.T) {
	f := dockerfake.New("srv-1")
	limited := mustCreate(t, f, startedReq)
	unlimited := mustCreate(t, f, wire.CreateContainerRequest{Name: "free", Image: "img", Start: true})
	stopped := mustCreate(t, f, wire.CreateContainerRequest{Name: "stopped", Image: "img", Resources: wire.Resources{CPU: 0.5}})
	tests := []struct {
		name string
		id   string
		want wire.ContainerStats
	}{
		{"running with limits", limited.ID, wire.ContainerStats{CPUPercent: 12.5, CPULimitCores: 2, MemoryUsedMB: 256,
			MemoryLimitMB: 2048, MemoryPercent: 12.5}},
		{"running without limits", unlimited.ID, wire.ContainerStats{CPUPercent: 12.5, CPULimitCores: dockerfake.CPUs,
			MemoryUsedMB: 256, MemoryLimitMB: dockerfake.MemoryTotalMB, MemoryPercent: 3.125}},
		{"stopped: the adapter's defaults", stopped.ID, wire.ContainerStats{CPULimitCores: 0.5, MemoryLimitMB: 1024}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.Stats(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if got.CollectedAt.IsZero() {
				t.Error("CollectedAt is zero")
			}
			got.CollectedAt, got.UptimeSeconds = time.Time{}, 0
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPull(t *testing.T) {
	f := dockerfake.New("srv-1")
	var got []wire.PullProgress
	if err := f.Pull(ctx, "alpine", func(p wire.PullProgress) { got = append(got, p) }); err != nil {
		t.Fatal(err)
	}
	if last := got[len(got)-1]; len(got) != 3 || last.Error != "" || last.Status != "Status: Downloaded newer image for alpine:latest" {
		t.Errorf("progress %+v, want two messages and the download status of alpine:latest", got)
	}
	imgs, _ := f.Images(ctx)
	if len(imgs) != 2 || imgs[1].Tags[0] != "alpine:latest" {
		t.Errorf("images %+v, want the initial one and alpine:latest", imgs)
	}
	if err := f.Pull(ctx, "alpine:latest", nil); err != nil {
		t.Fatal(err)
	}
	if imgs, _ := f.Images(ctx); len(imgs) != 2 {
		t.Errorf("pulling the same tag again gave %d images, want 2", len(imgs))
	}

	f.FailPull("pull access denied for nope")
	got = nil
	err := f.Pull(ctx, "nope:1", func(p wire.PullProgress) { got = append(got, p) })
	if !errors.Is(err, docker.ErrDocker) {
		t.Errorf("got %v, want ErrDocker", err)
	}
	if last := got[len(got)-1]; last.Error != "pull access denied for nope" {
		t.Errorf("last progress %+v, want the daemon's message as its error", last)
	}
	if imgs, _ := f.Images(ctx); len(imgs) != 2 {
		t.Errorf("a failed pull added an image: %+v", imgs)
	}
}

func TestRemoveData(t *testing.T) {
	f := dockerfake.New("srv-1")
	for _, p := range []string{"workspaces/w1", "workspaces/w2"} {
		if err := f.RemoveData(p); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"workspaces/w1", "workspaces/w2"}, f.RemovedData()); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
}

func TestDown(t *testing.T) {
	f := dockerfake.New("srv-1")
	c := mustCreate(t, f, startedReq)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errs := f.Events(sctx)

	f.SetDown(true)
	select {
	case err := <-errs:
		if !errors.Is(err, docker.ErrDocker) {
			t.Errorf("stream error: got %v, want ErrDocker", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the open event stream did not fail within 5s")
	}
	if _, ok := <-evs; ok {
		t.Error("events channel still open after the daemon went down")
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"ping", func() error { return f.Ping(ctx) }},
		{"info", func() error { _, err := f.Info(ctx); return err }},
		{"counts", func() error { _, _, _, err := f.Counts(ctx); return err }},
		{"list", func() error { _, err := f.List(ctx); return err }},
		{"create", func() error {
			_, err := f.Create(ctx, wire.CreateContainerRequest{Name: "x", Image: "img"})
			return err
		}},
		{"inspect", func() error { _, err := f.Inspect(ctx, c.ID); return err }},
		{"stop", func() error { return f.Stop(ctx, c.ID, 0) }},
		{"images", func() error { _, err := f.Images(ctx); return err }},
		{"pull", func() error { return f.Pull(ctx, "alpine", nil) }},
		{"events", func() error { _, errs := f.Events(ctx); return <-errs }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, docker.ErrDocker) {
				t.Errorf("got %v, want ErrDocker", err)
			}
		})
	}
	f.SetDown(false)
	if err := f.Ping(ctx); err != nil {
		t.Errorf("ping after coming back: %v", err)
	}
	if got, err := f.Inspect(ctx, c.ID); err != nil || got.State != "running" {
		t.Errorf("after coming back: %+v, %v; want the container as it was", got, err)
	}
}

// A subscriber's goroutine ends with its context.
func TestEventsEndWithContext(t *testing.T) {
	f := dockerfake.New("srv-1")
	sctx, cancel := context.WithCancel(ctx)
	evs, errs := f.Events(sctx)
	if n := f.Subscribers(); n != 1 {
		t.Fatalf("got %d subscribers, want 1", n)
	}
	mustCreate(t, f, startedReq) // queued, never read
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for f.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived its context by 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range evs { // closed: drains what was handed over, if anything
	}
	if err, ok := <-errs; ok {
		t.Errorf("got error %v after a cancellation, want the channel closed without one", err)
	}
}

func TestInfoAndCounts(t *testing.T) {
	f := dockerfake.New("srv-1")
	mustCreate(t, f, startedReq)
	mustCreate(t, f, wire.CreateContainerRequest{Name: "b", Image: "img"})
	info, err := f.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Containers != 2 || info.Images != 1 || info.CPUs != dockerfake.CPUs || info.DataRoot == "" {
		t.Errorf("got %+v, want 2 containers, 1 image, %d CPUs and a data root", info, dockerfake.CPUs)
	}
	all, running, images, err := f.Counts(ctx)
	if err != nil || all != 2 || running != 1 || images != 1 {
		t.Errorf("counts: got %d %d %d %v, want 2 1 1 nil", all, running, images, err)
	}
}
