package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/agent/internal/docker"
	"berth/agent/internal/docker/dockerfake"
	"berth/agent/internal/eventlog"
	"berth/agent/internal/server"
	"berth/shared/testutil"
	"berth/shared/wire"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/go-hclog"
)

// These tests run the API's handler over plain HTTP and the in-memory
// Docker; agent/agenttest runs the same server over mTLS.

var _ server.Docker = (*dockerfake.Fake)(nil)

var testCapacity = wire.Capacity{ServerID: "srv-1", Architecture: "amd64", CPUCores: 4, MemoryTotalMB: 8192}

type rig struct {
	t    *testing.T
	fake *dockerfake.Fake
	api  *server.Server
	url  string
}

func newRig(t *testing.T) *rig { t.Helper(); return newRigWith(t, server.StreamConfig{}) }

// newRigWith is a rig whose streams are bounded by cfg.
func newRigWith(t *testing.T, cfg server.StreamConfig) *rig {
	t.Helper()
	fake := dockerfake.New("srv-1")
	api := server.New("srv-1", fake, func() wire.Capacity { return testCapacity }, cfg, hclog.NewNullLogger())
	ts := httptest.NewServer(api.Handler())
	t.Cleanup(ts.Close)
	return &rig{t: t, fake: fake, api: api, url: ts.URL}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends body (raw when it is a string, JSON otherwise, none when nil)
// with the given headers (name, value pairs).
func (r *rig) do(method, path string, body any, header ...string) answer {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// decode decodes the answer's JSON body into v.
func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
}

func (a answer) wireError(t *testing.T) wire.Error {
	t.Helper()
	var e wire.Error
	a.decode(t, &e)
	return e
}

// lines decodes an NDJSON body.
func lines[T any](t *testing.T, body []byte) []T {
	t.Helper()
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("decode line %q: %v", sc.Bytes(), err)
		}
		out = append(out, v)
	}
	return out
}

// create makes a container through the API.
func (r *rig) create(req wire.CreateContainerRequest) wire.Container {
	r.t.Helper()
	a := r.do(http.MethodPost, wire.PathContainers, req)
	if a.status != http.StatusCreated {
		r.t.Fatalf("create: status %d %s", a.status, a.body)
	}
	var c wire.Container
	a.decode(r.t, &c)
	return c
}

func ctrPath(id, suffix string) string { return wire.PathContainers + "/" + id + suffix }

// Every sentinel of the adapter reaches the scheduler as one status and one
// wire code, the agent's error handler being the only place that maps them.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"bad request", docker.ErrBadRequest, http.StatusBadRequest, wire.CodeBadRequest},
		{"not found", docker.ErrNotFound, http.StatusNotFound, wire.CodeNotFound},
		{"image not found", docker.ErrImageNotFound, http.StatusNotFound, wire.CodeNoImage},
		{"start failed", docker.ErrStartFailed, http.StatusBadGateway, wire.CodeStartFailed},
		{"start failed wins over the docker error it wraps", fmt.Errorf("%w: %w", docker.ErrStartFailed, docker.ErrDocker),
			http.StatusBadGateway, wire.CodeStartFailed},
		{"conflict", docker.ErrConflict, http.StatusConflict, wire.CodeConflict},
		{"timeout", docker.ErrTimeout, http.StatusGatewayTimeout, wire.CodeTimeout},
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout, wire.CodeTimeout},
		{"docker", docker.ErrDocker, http.StatusBadGateway, wire.CodeDocker},
		{"anything else", errors.New("surprise"), http.StatusInternalServerError, wire.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.fake.FailNextCreate(fmt.Errorf("injected: %w", tt.err))
			a := r.do(http.MethodPost, wire.PathContainers, wire.CreateContainerRequest{Name: "ws", Image: "img"})
			if a.status != tt.wantStatus {
				t.Errorf("status: got %d, want %d", a.status, tt.wantStatus)
			}
			e := a.wireError(t)
			if e.Code != tt.wantCode {
				t.Errorf("code: got %q, want %q", e.Code, tt.wantCode)
			}
			if got := a.header.Get(wire.HeaderError); got != tt.wantCode {
				t.Errorf("%s header: got %q, want %q", wire.HeaderError, got, tt.wantCode)
			}
			if !strings.Contains(e.Message, "injected") {
				t.Errorf("message: got %q, want the error's text", e.Message)
			}
		})
	}
}

// A failure in the local dockerd is counted per route on /metrics.
func TestDockerErrorsCounted(t *testing.T) {
	r := newRig(t)
	r.fake.FailCreate(fmt.Errorf("injected: %w", docker.ErrDocker))
	for range 2 {
		r.do(http.MethodPost, wire.PathContainers, wire.CreateContainerRequest{Name: "ws", Image: "img"})
	}
	r.do(http.MethodPost, wire.PathContainers, `{"name":`) // a bad request is not the daemon's fault
	m := r.do(http.MethodGet, "/metrics", nil)
	want := `berth_agent_docker_errors_total{route="/v1/containers"} 2`
	if !strings.Contains(string(m.body), want) {
		t.Errorf("metrics lack %q", want)
	}
}

func TestEpochFence(t *testing.T) {
	r := newRig(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, Epoch: 5})
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		epoch      string // "" sends no header
		wantStatus int
		wantCode   string
	}{
		{"older epoch inspect", http.MethodGet, ctrPath(c.ID, ""), nil, "4", http.StatusConflict, wire.CodeStaleEpoch},
		{"older epoch stop", http.MethodPost, ctrPath(c.ID, "/stop"), nil, "4", http.StatusConflict, wire.CodeStaleEpoch},
		{"older epoch exec", http.MethodPost, ctrPath(c.ID, "/exec"), wire.ExecRequest{Cmd: []string{"true"}}, "1", http.StatusConflict, wire.CodeStaleEpoch},
		{"older epoch update", http.MethodPost, ctrPath(c.ID, "/update"), wire.Resources{CPU: 1}, "4", http.StatusConflict, wire.CodeStaleEpoch},
		{"older epoch remove", http.MethodDelete, ctrPath(c.ID, "?force=true"), nil, "4", http.StatusConflict, wire.CodeStaleEpoch},
		{"not an integer", http.MethodGet, ctrPath(c.ID, ""), nil, "five", http.StatusBadRequest, wire.CodeBadRequest},
		{"missing container", http.MethodGet, ctrPath("nope", ""), nil, "9", http.StatusNotFound, wire.CodeNotFound},
		{"same epoch", http.MethodGet, ctrPath(c.ID, ""), nil, "5", http.StatusOK, ""},
		{"newer epoch", http.MethodGet, ctrPath(c.ID, "/stats"), nil, "6", http.StatusOK, ""},
		{"no epoch", http.MethodGet, ctrPath(c.ID, ""), nil, "", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.epoch != "" {
				hdr = []string{wire.HeaderEpoch, tt.epoch}
			}
			a := r.do(tt.method, tt.path, tt.body, hdr...)
			if a.status != tt.wantStatus {
				t.Fatalf("status: got %d (%s), want %d", a.status, a.body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				if e := a.wireError(t); e.Code != tt.wantCode {
					t.Errorf("code: got %q, want %q", e.Code, tt.wantCode)
				}
			}
		})
	}
	got, err := r.fake.Inspect(context.Background(), c.ID)
	if err != nil || got.State != "running" || got.Resources.CPU != 0 {
		t.Errorf("after the stale requests: %+v, %v; want it running and unchanged", got, err)
	}
}

// TestRoutes walks one container through every route, in order.
func TestRoutes(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, WorkspaceID: "w1", Epoch: 2,
		Resources: wire.Resources{CPU: 2, MemoryMB: 2048}})
	if c.State != "running" || c.Labels[wire.LabelWorkspaceID] != "w1" || c.Labels[wire.LabelEpoch] != "2" {
		t.Fatalf("created %+v, want running with its workspace and epoch labels", c)
	}
	state := func() string {
		got, err := r.fake.Inspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.State
	}

	t.Run("list", func(t *testing.T) {
		var got []wire.Container
		r.do(http.MethodGet, wire.PathContainers, nil).decode(t, &got)
		if diff := cmp.Diff([]wire.Container{c}, got); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
	})
	t.Run("inspect", func(t *testing.T) {
		var got wire.Container
		a := r.do(http.MethodGet, ctrPath(c.ID, ""), nil)
		a.decode(t, &got)
		if a.status != http.StatusOK || got.ID != c.ID {
			t.Errorf("got %d %+v, want 200 and %s", a.status, got, c.ID)
		}
	})
	t.Run("stop without a body", func(t *testing.T) {
		if a := r.do(http.MethodPost, ctrPath(c.ID, "/stop"), nil); a.status != http.StatusNoContent {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		if s := state(); s != "exited" {
			t.Errorf("state %q, want exited", s)
		}
	})
	t.Run("exec into a stopped container", func(t *testing.T) {
		a := r.do(http.MethodPost, ctrPath(c.ID, "/exec"), wire.ExecRequest{Cmd: []string{"true"}})
		if a.status != http.StatusConflict || a.wireError(t).Code != wire.CodeConflict {
			t.Errorf("got %d %s, want 409 conflict", a.status, a.body)
		}
	})
	t.Run("start", func(t *testing.T) {
		if a := r.do(http.MethodPost, ctrPath(c.ID, "/start"), nil); a.status != http.StatusNoContent {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		if s := state(); s != "running" {
			t.Errorf("state %q, want running", s)
		}
	})
	t.Run("stop with a timeout", func(t *testing.T) {
		if a := r.do(http.MethodPost, ctrPath(c.ID, "/stop"), wire.StopRequest{TimeoutSeconds: 1}); a.status != http.StatusNoContent {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		if s := state(); s != "exited" {
			t.Errorf("state %q, want exited", s)
		}
		r.do(http.MethodPost, ctrPath(c.ID, "/start"), nil)
	})
	t.Run("exec", func(t *testing.T) {
		var got wire.ExecResult
		a := r.do(http.MethodPost, ctrPath(c.ID, "/exec"), wire.ExecRequest{Cmd: []string{"echo", "hi"}})
		a.decode(t, &got)
		want := wire.ExecResult{Stdout: []byte("echo hi\n"), Stderr: []byte(nil)}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" || a.status != http.StatusOK {
			t.Errorf("status %d, result (-want +got):\n%s", a.status, diff)
		}
	})
	t.Run("exec stream", func(t *testing.T) {
		r.fake.SetExec(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, stdout, stderr io.Writer) (int, error) {
			io.WriteString(stdout, "one\n")
			io.WriteString(stderr, "two\n")
			return 3, nil
		})
		defer r.fake.SetExec(nil)
		a := r.do(http.MethodPost, ctrPath(c.ID, "/exec?stream=1"), wire.ExecRequest{Cmd: []string{"x"}})
		if ct := a.header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Errorf("content type %q, want application/x-ndjson", ct)
		}
		want := []wire.ExecFrame{
			{Stream: "stdout", Data: []byte("one\n")},
			{Stream: "stderr", Data: []byte("two\n")},
			{Exit: true, ExitCode: 3},
		}
		if diff := cmp.Diff(want, lines[wire.ExecFrame](t, a.body)); diff != "" {
			t.Errorf("frames (-want +got):\n%s", diff)
		}
	})
	t.Run("exec stream of a missing container fails before the stream", func(t *testing.T) {
		a := r.do(http.MethodPost, ctrPath("nope", "/exec?stream=1"), wire.ExecRequest{Cmd: []string{"x"}})
		if a.status != http.StatusNotFound || a.wireError(t).Code != wire.CodeNotFound {
			t.Errorf("got %d %s, want 404 not_found", a.status, a.body)
		}
	})
	t.Run("stats", func(t *testing.T) {
		var got wire.ContainerStats
		r.do(http.MethodGet, ctrPath(c.ID, "/stats"), nil).decode(t, &got)
		if got.CPULimitCores != 2 || got.MemoryLimitMB != 2048 || got.MemoryUsedMB != dockerfake.StatsMemoryUsedMB {
			t.Errorf("got %+v, want the container's limits and the fake's use", got)
		}
	})
	t.Run("update", func(t *testing.T) {
		if a := r.do(http.MethodPost, ctrPath(c.ID, "/update"), wire.Resources{CPU: 1, MemoryMB: 1024}); a.status != http.StatusNoContent {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		got, _ := r.fake.Inspect(ctx, c.ID)
		if want := (wire.Resources{CPU: 1, MemoryMB: 1024}); got.Resources != want {
			t.Errorf("resources %+v, want %+v", got.Resources, want)
		}
	})
	t.Run("remove a running container without force", func(t *testing.T) {
		a := r.do(http.MethodDelete, ctrPath(c.ID, ""), nil)
		if a.status != http.StatusConflict || a.wireError(t).Code != wire.CodeConflict {
			t.Errorf("got %d %s, want 409 conflict", a.status, a.body)
		}
	})
	t.Run("remove with force", func(t *testing.T) {
		if a := r.do(http.MethodDelete, ctrPath(c.ID, "?force=true"), nil); a.status != http.StatusNoContent {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		if n := len(r.fake.Containers()); n != 0 {
			t.Errorf("%d containers left, want 0", n)
		}
		if a := r.do(http.MethodGet, ctrPath(c.ID, ""), nil); a.status != http.StatusNotFound {
			t.Errorf("inspect after removal: %d, want 404", a.status)
		}
	})
	t.Run("data removal", func(t *testing.T) {
		if a := r.do(http.MethodDelete, wire.PathData+"?path=workspaces/w1", nil); a.status != http.StatusNoContent {
			t.Fatalf("status %d %s", a.status, a.body)
		}
		if diff := cmp.Diff([]string{"workspaces/w1"}, r.fake.RemovedData()); diff != "" {
			t.Errorf("removed (-want +got):\n%s", diff)
		}
		a := r.do(http.MethodDelete, wire.PathData+"?path=../etc", nil)
		if a.status != http.StatusBadRequest || a.wireError(t).Code != wire.CodeBadRequest {
			t.Errorf("escaping path: got %d %s, want 400 bad_request", a.status, a.body)
		}
	})
}

func TestHostRoutes(t *testing.T) {
	r := newRig(t)
	t.Run("health", func(t *testing.T) {
		var h wire.Health
		a := r.do(http.MethodGet, wire.PathHealth, nil)
		a.decode(t, &h)
		if a.status != http.StatusOK || h.Status != "ok" || !h.DockerOK || h.ServerID != "srv-1" {
			t.Errorf("got %d %+v, want 200 ok with docker ok", a.status, h)
		}
	})
	t.Run("health with dockerd down", func(t *testing.T) {
		r.fake.SetDown(true)
		defer r.fake.SetDown(false)
		var h wire.Health
		a := r.do(http.MethodGet, wire.PathHealth, nil)
		a.decode(t, &h)
		if a.status != http.StatusOK || h.Status != "degraded" || h.DockerOK || h.Error == "" {
			t.Errorf("got %d %+v, want 200 degraded, docker not ok, with the error", a.status, h)
		}
		if a := r.do(http.MethodGet, wire.PathContainers, nil); a.status != http.StatusBadGateway || a.wireError(t).Code != wire.CodeDocker {
			t.Errorf("list while down: got %d %s, want 502 docker_error", a.status, a.body)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		var got wire.Capacity
		r.do(http.MethodGet, wire.PathCapacity, nil).decode(t, &got)
		if diff := cmp.Diff(testCapacity, got); diff != "" {
			t.Errorf("capacity (-want +got):\n%s", diff)
		}
	})
	t.Run("info", func(t *testing.T) {
		var got wire.DockerInfo
		r.do(http.MethodGet, wire.PathInfo, nil).decode(t, &got)
		want, _ := r.fake.Info(context.Background())
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("info (-want +got):\n%s", diff)
		}
	})
	t.Run("images", func(t *testing.T) {
		var got []wire.Image
		r.do(http.MethodGet, wire.PathImages, nil).decode(t, &got)
		want, _ := r.fake.Images(context.Background())
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("images (-want +got):\n%s", diff)
		}
	})
}

func TestPull(t *testing.T) {
	tests := []struct {
		name     string
		failPull string
		req      wire.PullRequest
		wantLast wire.PullProgress
	}{
		{"success", "", wire.PullRequest{Image: "alpine", Tag: "3"},
			wire.PullProgress{Done: true, Status: "pulled alpine:3"}},
		{"the daemon refuses: its words end the stream", "pull access denied for nope", wire.PullRequest{Image: "nope", Tag: "1"},
			wire.PullProgress{Done: true, Error: "pull access denied for nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.fake.FailPull(tt.failPull)
			a := r.do(http.MethodPost, wire.PathImagePull, tt.req)
			if a.status != http.StatusOK {
				t.Fatalf("status %d %s", a.status, a.body)
			}
			got := lines[wire.PullProgress](t, a.body)
			if len(got) < 3 {
				t.Fatalf("got %+v, want the daemon's progress and a final line", got)
			}
			if diff := cmp.Diff(tt.wantLast, got[len(got)-1]); diff != "" {
				t.Errorf("final line (-want +got):\n%s", diff)
			}
		})
	}
}

// Malformed requests are refused with 400 bad_request and a message that
// says what is wrong.
func TestRequestValidation(t *testing.T) {
	r := newRig(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string
		wantMsg    string // substring
	}{
		{"create: not JSON", http.MethodPost, wire.PathContainers, `{"name":`, 400, wire.CodeBadRequest, "invalid JSON body"},
		{"create: a stray brace after the body", http.MethodPost, wire.PathContainers, `{"name":"x","image":"img"}}`, 400, wire.CodeBadRequest, "data after the JSON value"},
		{"create: unknown field", http.MethodPost, wire.PathContainers, `{"name":"x","image":"y","priviledged":true}`, 400, wire.CodeBadRequest, "priviledged"},
		{"create: privileged", http.MethodPost, wire.PathContainers, wire.CreateContainerRequest{Name: "x", Image: "y", Privileged: true}, 400, wire.CodeBadRequest, "privileged"},
		{"create: host network", http.MethodPost, wire.PathContainers, wire.CreateContainerRequest{Name: "x", Image: "y", NetworkMode: "host"}, 400, wire.CodeBadRequest, "network_mode"},
		{"create: mount escaping", http.MethodPost, wire.PathContainers, wire.CreateContainerRequest{Name: "x", Image: "y",
			Mounts: []wire.Mount{{Source: "../etc", Target: "/etc"}}}, 400, wire.CodeBadRequest, "data directory"},
		{"stop: not JSON", http.MethodPost, ctrPath(c.ID, "/stop"), `nope`, 400, wire.CodeBadRequest, "invalid JSON body"},
		{"exec: no command", http.MethodPost, ctrPath(c.ID, "/exec"), wire.ExecRequest{}, 400, wire.CodeBadRequest, "cmd is required"},
		{"exec: not JSON", http.MethodPost, ctrPath(c.ID, "/exec"), `[]`, 400, wire.CodeBadRequest, "invalid JSON body"},
		{"update: negative", http.MethodPost, ctrPath(c.ID, "/update"), wire.Resources{CPU: -1}, 400, wire.CodeBadRequest, "must not be negative"},
		{"pull: no image", http.MethodPost, wire.PathImagePull, wire.PullRequest{}, 400, wire.CodeBadRequest, "image is required"},
		{"data: no path", http.MethodDelete, wire.PathData, nil, 400, wire.CodeBadRequest, "path is required"},
		{"no such route", http.MethodGet, "/v1/nope", nil, 404, wire.CodeNotFound, ""},
		{"the removed file route", http.MethodPut, ctrPath(c.ID, "/files?path=/x"), "data", 404, wire.CodeNotFound, ""},
		{"wrong method", http.MethodPut, wire.PathCapacity, nil, 405, wire.CodeNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.do(tt.method, tt.path, tt.body)
			if a.status != tt.wantStatus {
				t.Fatalf("status: got %d (%s), want %d", a.status, a.body, tt.wantStatus)
			}
			e := a.wireError(t)
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("got %+v, want code %q with a message mentioning %q", e, tt.wantCode, tt.wantMsg)
			}
		})
	}
	if n := len(r.fake.Containers()); n != 1 {
		t.Errorf("%d containers, want only the first (refused requests make nothing)", n)
	}
}

// openEvents opens the event stream; its answer is there once the
// subscription is live.
func (r *rig) openEvents(ctx context.Context) *bufio.Scanner {
	r.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+wire.PathEvents, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("events: status %d", resp.StatusCode)
	}
	return bufio.NewScanner(resp.Body)
}

func TestEventsStream(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc := r.openEvents(ctx)

	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, WorkspaceID: "w1"})
	if err := r.fake.Exit(c.ID, 2); err != nil {
		t.Fatal(err)
	}
	var got []wire.ContainerEvent
	for len(got) < 3 && sc.Scan() {
		var ev wire.ContainerEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	type brief struct {
		Action, Container, Workspace string
		Exit                         int
	}
	var gotBrief []brief
	for _, ev := range got {
		gotBrief = append(gotBrief, brief{ev.Action, ev.ContainerID, ev.WorkspaceID, ev.ExitCode})
	}
	want := []brief{{"create", c.ID, "w1", 0}, {"start", c.ID, "w1", 0}, {"die", c.ID, "w1", 2}}
	if diff := cmp.Diff(want, gotBrief); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// dockerd going away ends the stream; the scheduler re-opens it.
	r.fake.SetDown(true)
	for sc.Scan() {
	}
	if err := sc.Err(); err != nil {
		t.Errorf("stream ended with %v, want a clean end", err)
	}
}

// A client that leaves ends its subscription.
func TestEventsClientLeaves(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	r.openEvents(ctx)
	if n := r.fake.Subscribers(); n != 1 {
		t.Fatalf("got %d subscribers once the stream answered, want 1", n)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for r.fake.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived its client by 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The event log route answers the events after a cursor, and the health
// answer carries the latest number; without a log the route answers 501
// and the health answer no number.
func TestEventLogRoute(t *testing.T) {
	r := newRig(t)
	if a := r.do(http.MethodGet, wire.PathEventLog, nil); a.status != http.StatusNotImplemented {
		t.Errorf("without a log: status %d (%s), want 501", a.status, a.body)
	}
	var h wire.Health
	r.do(http.MethodGet, wire.PathHealth, nil).decode(t, &h)
	if h.EventSeq != 0 {
		t.Errorf("without a log: health event_seq %d, want 0", h.EventSeq)
	}

	l := eventlog.New()
	r.api.EnableEventLog(l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, r.fake, hclog.NewNullLogger()) }()
	t.Cleanup(func() { cancel(); <-done })
	testutil.Eventually(t, 5*time.Second, "the log subscribed", func() bool { return r.fake.Subscribers() == 1 })

	var first wire.EventLog
	r.do(http.MethodGet, wire.PathEventLog, nil).decode(t, &first)
	if !first.Reset || len(first.Events) != 0 {
		t.Fatalf("first call: %+v, want a reset with no events", first)
	}
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, WorkspaceID: "w1"})
	if err := r.fake.Exit(c.ID, 2); err != nil {
		t.Fatal(err)
	}
	var got wire.EventLog
	testutil.Eventually(t, 5*time.Second, "the exit in the log", func() bool {
		r.do(http.MethodGet, wire.PathEventLog+"?"+wire.QueryAfter+"="+fmt.Sprint(first.Seq), nil).decode(t, &got)
		return len(got.Events) > 0 && got.Events[len(got.Events)-1].Action == "die"
	})
	if got.Reset || got.Seq != first.Seq+uint64(len(got.Events)) || got.Events[len(got.Events)-1].ExitCode != 2 {
		t.Errorf("after the exit: %+v, want the events numbered %d… without a reset", got, first.Seq+1)
	}
	r.do(http.MethodGet, wire.PathHealth, nil).decode(t, &h)
	if h.EventSeq != got.Seq {
		t.Errorf("health event_seq %d, want the latest number %d", h.EventSeq, got.Seq)
	}
	if a := r.do(http.MethodGet, wire.PathEventLog+"?"+wire.QueryAfter+"=-1", nil); a.status != http.StatusBadRequest {
		t.Errorf("a negative cursor: status %d, want 400", a.status)
	}
}

func TestLastContact(t *testing.T) {
	r := newRig(t)
	before := r.api.LastContact()
	deadline := time.Now().Add(5 * time.Second)
	for !r.api.LastContact().After(before) {
		if time.Now().After(deadline) {
			t.Fatal("LastContact did not move within 5s of requests")
		}
		r.do(http.MethodGet, wire.PathCapacity, nil)
	}
}

// Wrap's middleware sees every request before the API does.
func TestWrap(t *testing.T) {
	fake := dockerfake.New("srv-1")
	api := server.New("srv-1", fake, func() wire.Capacity { return testCapacity }, server.StreamConfig{}, hclog.NewNullLogger())
	var seen []string
	api.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			seen = append(seen, q.Method+" "+q.URL.Path)
			if q.URL.Path == wire.PathInfo {
				http.Error(w, "held", http.StatusTeapot)
				return
			}
			next.ServeHTTP(w, q)
		})
	})
	ts := httptest.NewServer(api.Handler())
	defer ts.Close()
	for _, p := range []string{wire.PathCapacity, wire.PathInfo} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[string]int{wire.PathCapacity: 200, wire.PathInfo: http.StatusTeapot}[p]; resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", p, resp.StatusCode, want)
		}
	}
	if diff := cmp.Diff([]string{"GET " + wire.PathCapacity, "GET " + wire.PathInfo}, seen); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
}
