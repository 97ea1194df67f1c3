package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"berth/shared/wire"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/google/go-cmp/cmp"
)

// The tests of this file run the adapter over stubAPI: its failure paths,
// which a real daemon produces only by accident.

var errDaemon = errors.New("daemon exploded")

func TestWrapErr(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want error
	}{
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ErrTimeout},
		{"cancelled stays cancelled", context.Canceled, context.Canceled},
		{"not found", notFound("container"), ErrNotFound},
		{"conflict", fmt.Errorf("name in use: %w", cerrdefs.ErrConflict), ErrConflict},
		{"invalid argument", fmt.Errorf("bad: %w", cerrdefs.ErrInvalidArgument), ErrBadRequest},
		{"anything else", errDaemon, ErrDocker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wrapErr(tt.in, "op %s", "x")
			if !errors.Is(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if !errors.Is(got, tt.in) {
				t.Errorf("got %v, want the SDK error kept in the chain", got)
			}
			if !strings.Contains(got.Error(), "op x") {
				t.Errorf("got %q, want the message %q in it", got, "op x")
			}
		})
	}
	if wrapErr(nil, "x") != nil {
		t.Error("wrapErr(nil) is not nil")
	}
}

func TestCreateFailures(t *testing.T) {
	req := wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true}
	tests := []struct {
		name      string
		req       wire.CreateContainerRequest
		errs      map[string]error
		want      []error  // every one must be in the chain
		wantCalls []string // the SDK calls that change something, in order
	}{
		{
			name: "refused request touches nothing",
			req:  wire.CreateContainerRequest{Name: "ws", Image: "img", Privileged: true},
			want: []error{ErrBadRequest},
		},
		{
			name: "image not in the daemon",
			req:  wire.CreateContainerRequest{Name: "ws", Image: "nope"},
			want: []error{ErrImageNotFound},
		},
		{
			name: "image inspection fails",
			req:  req,
			errs: map[string]error{"ImageInspect": errDaemon},
			want: []error{ErrDocker, errDaemon},
		},
		{
			name: "image inspection times out",
			req:  req,
			errs: map[string]error{"ImageInspect": context.DeadlineExceeded},
			want: []error{ErrTimeout},
		},
		{
			name:      "name in use",
			req:       req,
			errs:      map[string]error{"ContainerCreate": fmt.Errorf("name taken: %w", cerrdefs.ErrConflict)},
			want:      []error{ErrConflict},
			wantCalls: []string{"ContainerCreate ws"},
		},
		{
			name:      "create fails",
			req:       req,
			errs:      map[string]error{"ContainerCreate": errDaemon},
			want:      []error{ErrDocker, errDaemon},
			wantCalls: []string{"ContainerCreate ws"},
		},
		{
			name: "start fails: the container is removed again",
			req:  req,
			errs: map[string]error{"ContainerStart": errDaemon},
			want: []error{ErrStartFailed, ErrDocker, errDaemon},
			wantCalls: []string{"ContainerCreate ws", "ContainerStart id-ws",
				"ContainerRemove id-ws force=true volumes=true"},
		},
		{
			name: "start fails and so does the removal: the start error is reported",
			req:  req,
			errs: map[string]error{"ContainerStart": errDaemon, "ContainerRemove": errors.New("remove failed")},
			want: []error{ErrStartFailed, errDaemon},
			wantCalls: []string{"ContainerCreate ws", "ContainerStart id-ws",
				"ContainerRemove id-ws force=true volumes=true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newStubAPI()
			for k, v := range tt.errs {
				api.errs[k] = v
			}
			c := newStubClient(t, api)
			ctr, err := c.Create(context.Background(), tt.req)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("got %v, want %v in the chain", err, want)
				}
			}
			if ctr.ID != "" {
				t.Errorf("got container %q with the error, want none", ctr.ID)
			}
			if diff := cmp.Diff(tt.wantCalls, api.recorded()); diff != "" {
				t.Errorf("SDK calls (-want +got):\n%s", diff)
			}
		})
	}
}

// A start that fails after the caller gave up still removes the container:
// removeAfterFailure works on a context of its own.
func TestCreateStartFailureRemovesAfterCancel(t *testing.T) {
	api := newStubAPI()
	api.errs["ContainerStart"] = errDaemon
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api.onStart = cancel
	c := newStubClient(t, api)
	if _, err := c.Create(ctx, wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true}); !errors.Is(err, ErrStartFailed) {
		t.Fatalf("got %v, want ErrStartFailed", err)
	}
	if got := api.recorded(); len(got) != 3 || !strings.HasPrefix(got[2], "ContainerRemove id-ws") {
		t.Fatalf("SDK calls %q, want the container removed after the failed start", got)
	}
	if api.removeCtxErr != nil {
		t.Errorf("the removal ran with a dead context (%v), want a live one", api.removeCtxErr)
	}
}

func TestCreateSuccess(t *testing.T) {
	api := newStubAPI()
	c := newStubClient(t, api)
	ctr, err := c.Create(context.Background(), wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, WorkspaceID: "w1", Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	if ctr.ID != "id-ws" || ctr.Name != "ws" || ctr.Labels[wire.LabelEpoch] != "3" || ctr.Labels[wire.LabelWorkspaceID] != "w1" {
		t.Errorf("got %+v, want id-ws named ws with epoch 3 and workspace w1 labels", ctr)
	}
	if diff := cmp.Diff([]string{"ContainerCreate ws", "ContainerStart id-ws"}, api.recorded()); diff != "" {
		t.Errorf("SDK calls (-want +got):\n%s", diff)
	}
}

// owned is the gate of every per-container method: a container without
// berth.managed=true, a missing one and an empty id never reach the SDK
// call that would act on them.
func TestOwnedGate(t *testing.T) {
	methods := []struct {
		name string
		call func(c *Client, id string) error
	}{
		{"Inspect", func(c *Client, id string) error { _, err := c.Inspect(context.Background(), id); return err }},
		{"Start", func(c *Client, id string) error { return c.Start(context.Background(), id) }},
		{"Stop", func(c *Client, id string) error { return c.Stop(context.Background(), id, time.Second) }},
		{"Remove", func(c *Client, id string) error { return c.Remove(context.Background(), id, true) }},
		{"Update", func(c *Client, id string) error {
			return c.Update(context.Background(), id, wire.Resources{CPU: 1})
		}},
		{"Exec", func(c *Client, id string) error {
			_, _, err := c.Exec(context.Background(), id, wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil)
			return err
		}},
		{"Stats", func(c *Client, id string) error { _, err := c.Stats(context.Background(), id); return err }},
		{"ExecTTY", func(c *Client, id string) error {
			_, err := c.ExecTTY(context.Background(), id, wire.TTYRequest{Cmd: []string{"bash"}})
			return err
		}},
		{"Address", func(c *Client, id string) error { _, err := c.Address(context.Background(), id); return err }},
	}
	cases := []struct {
		name    string
		id      string
		inspect error // ContainerInspect's error
		want    error
	}{
		{"not berth's", "foreign", nil, ErrNotFound},
		{"missing", "missing", nil, ErrNotFound},
		{"empty id", " ", nil, ErrBadRequest},
		{"inspection fails", "foreign", errDaemon, ErrDocker},
	}
	for _, m := range methods {
		for _, tc := range cases {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				api := newStubAPI()
				api.put("foreign", "someone-elses", false, true)
				if tc.inspect != nil {
					api.errs["ContainerInspect"] = tc.inspect
				}
				err := m.call(newStubClient(t, api), tc.id)
				if !errors.Is(err, tc.want) {
					t.Errorf("got %v, want %v", err, tc.want)
				}
				if calls := api.recorded(); len(calls) != 0 {
					t.Errorf("SDK calls %q, want none", calls)
				}
			})
		}
	}
}

func TestMethodFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		running bool // state of the managed container "c1"
		errs    map[string]error
		call    func(c *Client) error
		want    error
	}{
		{"ping", true, map[string]error{"Ping": errDaemon}, func(c *Client) error { return c.Ping(ctx) }, ErrDocker},
		{"info", true, map[string]error{"Info": errDaemon}, func(c *Client) error { _, err := c.Info(ctx); return err }, ErrDocker},
		{"counts", true, map[string]error{"Info": errDaemon}, func(c *Client) error {
			_, _, _, err := c.Counts(ctx)
			return err
		}, ErrDocker},
		{"list", true, map[string]error{"ContainerList": errDaemon}, func(c *Client) error { _, err := c.List(ctx); return err }, ErrDocker},
		{"start", false, map[string]error{"ContainerStart": errDaemon}, func(c *Client) error { return c.Start(ctx, "c1") }, ErrDocker},
		{"stop", true, map[string]error{"ContainerStop": errDaemon}, func(c *Client) error { return c.Stop(ctx, "c1", time.Second) }, ErrDocker},
		{"remove of a running container without force", true,
			map[string]error{"ContainerRemove": fmt.Errorf("stop it first: %w", cerrdefs.ErrConflict)},
			func(c *Client) error { return c.Remove(ctx, "c1", false) }, ErrConflict},
		{"update", true, map[string]error{"ContainerUpdate": errDaemon}, func(c *Client) error {
			return c.Update(ctx, "c1", wire.Resources{CPU: 2})
		}, ErrDocker},
		{"update with negative limits", true, nil, func(c *Client) error {
			return c.Update(ctx, "c1", wire.Resources{MemoryMB: -1})
		}, ErrBadRequest},
		{"exec into a stopped container", false, nil, func(c *Client) error {
			_, _, err := c.Exec(ctx, "c1", wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil)
			return err
		}, ErrConflict},
		{"exec without a command", true, nil, func(c *Client) error {
			_, _, err := c.Exec(ctx, "c1", wire.ExecRequest{}, nil, nil, nil)
			return err
		}, ErrBadRequest},
		{"exec create fails", true, map[string]error{"ContainerExecCreate": errDaemon}, func(c *Client) error {
			_, _, err := c.Exec(ctx, "c1", wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil)
			return err
		}, ErrDocker},
		{"exec attach fails", true, map[string]error{"ContainerExecAttach": errDaemon}, func(c *Client) error {
			_, _, err := c.Exec(ctx, "c1", wire.ExecRequest{Cmd: []string{"true"}}, nil, nil, nil)
			return err
		}, ErrDocker},
		{"tty into a stopped container", false, nil, func(c *Client) error {
			_, err := c.ExecTTY(ctx, "c1", wire.TTYRequest{Cmd: []string{"bash"}})
			return err
		}, ErrConflict},
		{"tty without a command", true, nil, func(c *Client) error {
			_, err := c.ExecTTY(ctx, "c1", wire.TTYRequest{})
			return err
		}, ErrBadRequest},
		{"tty with rows but no cols", true, nil, func(c *Client) error {
			_, err := c.ExecTTY(ctx, "c1", wire.TTYRequest{Cmd: []string{"bash"}, Rows: 24})
			return err
		}, ErrBadRequest},
		{"tty exec create fails", true, map[string]error{"ContainerExecCreate": errDaemon}, func(c *Client) error {
			_, err := c.ExecTTY(ctx, "c1", wire.TTYRequest{Cmd: []string{"bash"}})
			return err
		}, ErrDocker},
		{"tty exec attach fails", true, map[string]error{"ContainerExecAttach": errDaemon}, func(c *Client) error {
			_, err := c.ExecTTY(ctx, "c1", wire.TTYRequest{Cmd: []string{"bash"}})
			return err
		}, ErrDocker},
		{"address of a stopped container", false, nil, func(c *Client) error {
			_, err := c.Address(ctx, "c1")
			return err
		}, ErrConflict},
		{"address of a container without a network", true, nil, func(c *Client) error {
			_, err := c.Address(ctx, "c1")
			return err
		}, ErrConflict},
		{"stats fail", true, map[string]error{"ContainerStats": errDaemon}, func(c *Client) error {
			_, err := c.Stats(ctx, "c1")
			return err
		}, ErrDocker},
		{"images", true, map[string]error{"ImageList": errDaemon}, func(c *Client) error { _, err := c.Images(ctx); return err }, ErrDocker},
		{"pull of a malformed reference", true, nil, func(c *Client) error { return c.Pull(ctx, "bad ref!", nil) }, ErrBadRequest},
		{"pull refused up front", true, map[string]error{"ImagePull": notFound("repository")}, func(c *Client) error {
			return c.Pull(ctx, "alpine:3", nil)
		}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newStubAPI()
			api.put("c1", "ws", true, tt.running)
			for k, v := range tt.errs {
				api.errs[k] = v
			}
			if err := tt.call(newStubClient(t, api)); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStatsUndecodable(t *testing.T) {
	api := newStubAPI()
	api.put("c1", "ws", true, true)
	api.statsBody = "{not json"
	if _, err := newStubClient(t, api).Stats(context.Background(), "c1"); !errors.Is(err, ErrDocker) {
		t.Errorf("got %v, want ErrDocker", err)
	}
}

func TestPullStreamFailure(t *testing.T) {
	api := newStubAPI()
	api.pullBody = `{"status":"Pulling"}` + "\n" + `{"error":"manifest unknown"}` + "\n"
	var got []wire.PullProgress
	err := newStubClient(t, api).Pull(context.Background(), "alpine:3", func(p wire.PullProgress) { got = append(got, p) })
	if !errors.Is(err, ErrDocker) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("got %v, want ErrDocker with the daemon's message", err)
	}
	want := []wire.PullProgress{{Status: "Pulling"}, {Error: "manifest unknown"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

func TestStopTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    *int // seconds handed to Docker; nil: the container's own
	}{
		{"rounded up to whole seconds", 1500 * time.Millisecond, ptr(2)},
		{"zero kills at once", 0, ptr(0)},
		{"negative uses the container's own", -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newStubAPI()
			api.put("c1", "ws", true, true)
			if err := newStubClient(t, api).Stop(context.Background(), "c1", tt.timeout); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, api.stopOpts.Timeout); diff != "" {
				t.Errorf("timeout (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// List leaves out a container removed between the list and its
// inspection (the stub lists "gone", which it cannot inspect).
func TestListSkipsVanished(t *testing.T) {
	api := newStubAPI()
	api.put("c1", "ws", true, true)
	got, err := newStubClient(t, api).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "c1" {
		t.Errorf("got %+v, want only c1 (the vanished one left out)", got)
	}
}

func TestExecOverStub(t *testing.T) {
	api := newStubAPI()
	api.put("c1", "ws", true, true)
	api.execOutput = framed(t, "out\n", "err\n")
	api.execExit = 3
	var stdout, stderr bytes.Buffer
	code, timedOut, err := newStubClient(t, api).Exec(context.Background(), "c1", wire.ExecRequest{Cmd: []string{"x"}}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 || timedOut || stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("got exit %d timed out %v stdout %q stderr %q, want 3 false \"out\\n\" \"err\\n\"", code, timedOut, stdout.String(), stderr.String())
	}
}

// A TTY exec is created with a terminal, stdin and berth's detach keys;
// its output is the raw stream (no multiplexing), then io.EOF; the initial
// size is applied; Wait reports the exit code.
func TestExecTTYOverStub(t *testing.T) {
	api := newStubAPI()
	api.put("c1", "ws", true, true)
	api.execOutput = []byte("$ hi\r\n")
	api.execExit = 7
	ctx := context.Background()
	tty, err := newStubClient(t, api).ExecTTY(ctx, "c1", wire.TTYRequest{Cmd: []string{"bash"}, User: "dev", Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out, err := io.ReadAll(tty)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "$ hi\r\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
	code, err := tty.Wait(ctx)
	if err != nil || code != 7 {
		t.Errorf("Wait: got %d, %v, want 7, nil", code, err)
	}
	if err := tty.Resize(ctx, 0, 80); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Resize to 0 rows: got %v, want ErrBadRequest", err)
	}
	opts := api.execOpts
	if !opts.Tty || !opts.AttachStdin || !opts.AttachStdout || opts.User != "dev" || opts.DetachKeys != ttyDetachKeys ||
		opts.ConsoleSize == nil || *opts.ConsoleSize != [2]uint{40, 120} {
		t.Errorf("exec options: got %+v, want a 40x120 tty with stdin, user dev and berth's detach keys", opts)
	}
	want := []string{"ContainerExecCreate c1", "ContainerExecResize exec-1 40x120"}
	if diff := cmp.Diff(want, api.recorded()); diff != "" {
		t.Errorf("SDK calls (-want +got):\n%s", diff)
	}
}

func TestAddressOverStub(t *testing.T) {
	tests := []struct {
		name string
		ns   *container.NetworkSettings
		want string
	}{
		{"default bridge first", &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"a-net": {IPAddress: "10.0.0.2"}, "bridge": {IPAddress: "172.17.0.5"}, "z-net": {IPAddress: "10.0.9.2"},
		}}, "172.17.0.5"},
		{"first named network", &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"b-net": {IPAddress: "10.0.1.2"}, "a-net": {IPAddress: "10.0.0.2"}, "0-none": {},
		}}, "10.0.0.2"},
		{"bridge without an address", &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"bridge": {}, "b-net": {IPAddress: "10.0.1.2"},
		}}, "10.0.1.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newStubAPI()
			api.put("c1", "ws", true, true)
			ctr := api.containers["c1"]
			ctr.NetworkSettings = tt.ns
			api.containers["c1"] = ctr
			got, err := newStubClient(t, api).Address(context.Background(), "c1")
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

// A failing daemon event stream ends Events with one ErrDocker error, then
// both channels close.
func TestEventsStreamFailure(t *testing.T) {
	api := newStubAPI()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, errs := newStubClient(t, api).Events(ctx)
	api.events <- events.Message{Action: events.ActionStart, Actor: events.Actor{ID: "c1"}}
	if ev := <-evs; ev.ContainerID != "c1" || ev.Action != "start" {
		t.Errorf("got %+v, want the start of c1", ev)
	}
	api.eventErrs <- errDaemon
	if err := <-errs; !errors.Is(err, ErrDocker) || !errors.Is(err, errDaemon) {
		t.Errorf("got %v, want ErrDocker wrapping the daemon's error", err)
	}
	if _, ok := <-evs; ok {
		t.Error("events channel still open after the failure")
	}
	if _, ok := <-errs; ok {
		t.Error("error channel still open after the failure")
	}
}
