package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"berth/shared/wire"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/hashicorp/go-hclog"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// stubAPI is a hand-written stand-in for the Docker SDK client (dockerAPI):
// containers by ID, the images present, one error to answer per SDK method
// (errs, keyed by method name), and a log of the calls that change
// something. It is safe for concurrent use.
type stubAPI struct {
	mu         sync.Mutex
	containers map[string]container.InspectResponse
	images     map[string]bool
	errs       map[string]error
	calls      []string // "ContainerStart <id>", "ContainerRemove <id> force=true", ...

	// onStart runs inside ContainerStart, before its answer (e.g. to
	// cancel the caller's context).
	onStart func()
	// removeCtxErr is the context error ContainerRemove saw.
	removeCtxErr error
	// stopOpts is the options of the last ContainerStop.
	stopOpts container.StopOptions

	statsBody  string // the JSON ContainerStats answers
	pullBody   string // the progress stream ImagePull answers
	execOutput []byte // stdcopy-framed output of an exec (raw for a TTY exec)
	execExit   int
	execOpts   container.ExecOptions // of the last ContainerExecCreate

	events    chan events.Message
	eventErrs chan error
}

var _ dockerAPI = (*stubAPI)(nil)

func newStubAPI() *stubAPI {
	return &stubAPI{
		containers: map[string]container.InspectResponse{},
		images:     map[string]bool{"img": true},
		errs:       map[string]error{},
		events:     make(chan events.Message),
		eventErrs:  make(chan error, 1),
	}
}

// newStubClient is a Client over api with a resolved temporary data
// directory.
func newStubClient(t *testing.T, api dockerAPI) *Client {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Client{api: api, dataDir: dir, serverID: "srv-1", log: hclog.NewNullLogger(),
		sandbox: DefaultHostSandbox(), networks: map[string]bool{}}
}

// put adds a container; managed ones carry berth.managed=true.
func (s *stubAPI) put(id, name string, managed, running bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	labels := map[string]string{}
	if managed {
		labels[wire.LabelManaged] = "true"
	}
	status := container.StateCreated
	if running {
		status = container.StateRunning
	}
	s.containers[id] = container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: id, Name: "/" + name, Created: "2026-01-02T03:04:05Z",
			State:      &container.State{Status: status, Running: running},
			HostConfig: &container.HostConfig{},
		},
		Config: &container.Config{Image: "img", Labels: labels},
	}
}

func (s *stubAPI) record(call string) {
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
}

func (s *stubAPI) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *stubAPI) err(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs[method]
}

func notFound(what string) error { return fmt.Errorf("no such %s: %w", what, cerrdefs.ErrNotFound) }

func (s *stubAPI) Ping(context.Context) (types.Ping, error) { return types.Ping{}, s.err("Ping") }

func (s *stubAPI) Info(context.Context) (system.Info, error) {
	if err := s.err("Info"); err != nil {
		return system.Info{}, err
	}
	return system.Info{ServerVersion: "stub", Containers: 3, ContainersRunning: 1, Images: 2, DockerRootDir: "/var/lib/docker"}, nil
}

func (s *stubAPI) Close() error { return nil }

func (s *stubAPI) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	if err := s.err("ImageInspect"); err != nil {
		return image.InspectResponse{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.images[ref] {
		return image.InspectResponse{}, notFound("image")
	}
	return image.InspectResponse{ID: "sha256:" + ref}, nil
}

func (s *stubAPI) ImageList(context.Context, image.ListOptions) ([]image.Summary, error) {
	if err := s.err("ImageList"); err != nil {
		return nil, err
	}
	return []image.Summary{{ID: "sha256:1", RepoTags: []string{"img:latest", "<none>:<none>"}, Size: 10, Created: 1}}, nil
}

func (s *stubAPI) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	s.record("ImagePull " + ref)
	if err := s.err("ImagePull"); err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewBufferString(s.pullBody)), nil
}

func (s *stubAPI) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig,
	_ *network.NetworkingConfig, _ *ocispec.Platform, name string,
) (container.CreateResponse, error) {
	s.record("ContainerCreate " + name)
	if err := s.err("ContainerCreate"); err != nil {
		return container.CreateResponse{}, err
	}
	id := "id-" + name
	s.mu.Lock()
	s.containers[id] = container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: id, Name: "/" + name, State: &container.State{Status: container.StateCreated}, HostConfig: hc,
		},
		Config: cfg,
	}
	s.mu.Unlock()
	return container.CreateResponse{ID: id}, nil
}

func (s *stubAPI) NetworkInspect(_ context.Context, name string, _ network.InspectOptions) (network.Inspect, error) {
	if err := s.err("NetworkInspect"); err != nil {
		return network.Inspect{}, err
	}
	return network.Inspect{Name: name, Internal: name == NetworkInternal, Options: map[string]string{optICC: "false"}}, nil
}

func (s *stubAPI) NetworkCreate(_ context.Context, name string, _ network.CreateOptions) (network.CreateResponse, error) {
	s.record("NetworkCreate " + name)
	return network.CreateResponse{ID: name}, s.err("NetworkCreate")
}

func (s *stubAPI) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	s.record("ContainerStart " + id)
	if s.onStart != nil {
		s.onStart()
	}
	return s.err("ContainerStart")
}

func (s *stubAPI) ContainerStop(_ context.Context, id string, opts container.StopOptions) error {
	s.record("ContainerStop " + id)
	s.mu.Lock()
	s.stopOpts = opts
	s.mu.Unlock()
	return s.err("ContainerStop")
}

func (s *stubAPI) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	s.record(fmt.Sprintf("ContainerRemove %s force=%v volumes=%v", id, opts.Force, opts.RemoveVolumes))
	s.mu.Lock()
	s.removeCtxErr = ctx.Err()
	s.mu.Unlock()
	if err := s.err("ContainerRemove"); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.containers, id)
	s.mu.Unlock()
	return nil
}

func (s *stubAPI) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	if err := s.err("ContainerInspect"); err != nil {
		return container.InspectResponse{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctr, ok := s.containers[id]
	if !ok {
		return container.InspectResponse{}, notFound("container")
	}
	return ctr, nil
}

// ContainerList lists every container it holds plus "gone", one removed
// between the list and its inspection.
func (s *stubAPI) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	if err := s.err("ContainerList"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []container.Summary{{ID: "gone"}}
	for id := range s.containers {
		out = append(out, container.Summary{ID: id})
	}
	return out, nil
}

func (s *stubAPI) ContainerUpdate(_ context.Context, id string, _ container.UpdateConfig) (container.UpdateResponse, error) {
	s.record("ContainerUpdate " + id)
	return container.UpdateResponse{}, s.err("ContainerUpdate")
}

func (s *stubAPI) ContainerStats(_ context.Context, id string, _ bool) (container.StatsResponseReader, error) {
	s.record("ContainerStats " + id)
	if err := s.err("ContainerStats"); err != nil {
		return container.StatsResponseReader{}, err
	}
	return container.StatsResponseReader{Body: io.NopCloser(bytes.NewBufferString(s.statsBody))}, nil
}

func (s *stubAPI) ContainerExecCreate(_ context.Context, id string, opts container.ExecOptions) (container.ExecCreateResponse, error) {
	s.record("ContainerExecCreate " + id)
	s.mu.Lock()
	s.execOpts = opts
	s.mu.Unlock()
	if err := s.err("ContainerExecCreate"); err != nil {
		return container.ExecCreateResponse{}, err
	}
	return container.ExecCreateResponse{ID: "exec-1"}, nil
}

func (s *stubAPI) ContainerExecResize(_ context.Context, id string, opts container.ResizeOptions) error {
	s.record(fmt.Sprintf("ContainerExecResize %s %dx%d", id, opts.Height, opts.Width))
	return s.err("ContainerExecResize")
}

// ContainerExecAttach answers a connection that carries execOutput and
// then ends, as the daemon's hijacked stream does when the process exits.
func (s *stubAPI) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (types.HijackedResponse, error) {
	if err := s.err("ContainerExecAttach"); err != nil {
		return types.HijackedResponse{}, err
	}
	ours, theirs := net.Pipe()
	out := s.execOutput
	go func() { // ends when the output is written or the adapter closes its side
		_, _ = theirs.Write(out)
		theirs.Close()
	}()
	return types.NewHijackedResponse(ours, "application/vnd.docker.multiplexed-stream"), nil
}

func (s *stubAPI) ContainerExecInspect(context.Context, string) (container.ExecInspect, error) {
	if err := s.err("ContainerExecInspect"); err != nil {
		return container.ExecInspect{}, err
	}
	return container.ExecInspect{ExecID: "exec-1", Running: false, ExitCode: s.execExit}, nil
}

func (s *stubAPI) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	return s.events, s.eventErrs
}

// framed is output as the daemon multiplexes it (stdcopy).
func framed(t *testing.T, stdout, stderr string) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := stdcopy.NewStdWriter(&b, stdcopy.Stdout).Write([]byte(stdout)); err != nil {
		t.Fatal(err)
	}
	if _, err := stdcopy.NewStdWriter(&b, stdcopy.Stderr).Write([]byte(stderr)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
