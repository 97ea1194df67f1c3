package agenttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/internal/capacity"
	"berth/agent/internal/docker"
	"berth/agent/internal/docker/dockerfake"
	"berth/agent/internal/eventlog"
	"berth/agent/internal/homes"
	"berth/agent/internal/server"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// ExecFunc answers an exec in place of a process (see SetExec): it writes
// the output and returns the exit code.
type ExecFunc = dockerfake.ExecFunc

// ExecIOFunc answers an exec reading its input as a stream (see
// SetExecIO), as the raw exec route feeds it.
type ExecIOFunc = dockerfake.ExecIOFunc

// TTYFunc plays the process of a terminal session (see SetTTY): it reads
// the user's input from term, writes the terminal's output to it, and
// returns the exit code, which the agent reports when closing the stream
// ("exit N"). It must return when ctx ends (the session was closed, or the
// container stopped).
type TTYFunc = dockerfake.TTYFunc

// Terminal is the process's side of a terminal session: its request, its
// input and output (Read/Write), its sizes (Size, Resizes, Resized) and
// whether the scheduler closed it (Closed).
type Terminal = dockerfake.Terminal

// TermSize is a terminal size.
type TermSize = dockerfake.Size

// StreamConfig bounds the agent's TTY and proxy streams (StartWith): the
// TTY output write timeout, the proxied requests open per container, the
// app's connect, answer-header and idle timeouts. Zero fields take the
// agent's defaults.
type StreamConfig = server.StreamConfig

// Agent is one running agent: the real API over the in-memory Docker. It
// is safe for concurrent use.
type Agent struct {
	// ServerID is the agent's server id (its certificate's name and the
	// berth.server_id label of its containers).
	ServerID string
	// DataDir is a real directory the home transfer routes work in (paths
	// relative to it, as on a real host); the in-memory Docker does not
	// create mount directories in it.
	DataDir string

	t      testing.TB
	docker *dockerfake.Fake
	api    *server.Server
	events *eventlog.Log
	logged chan struct{} // closed when the event log's Run has returned
	addr   string
	stop   context.CancelFunc
	served chan error // Serve's result
	log    *testLog

	wrap atomic.Pointer[func(http.Handler) http.Handler]

	mu       sync.Mutex
	down     bool
	closed   bool
	inflight map[uint64]context.CancelFunc // the requests being served
	nextReq  uint64
	capacity wire.Capacity // the host figures; counts are filled in per answer
}

// Start serves an agent for serverID on 127.0.0.1 with a server
// certificate from pki, accepting scheduler certificates of the same CA,
// until the test ends (or Close).
func Start(t testing.TB, pki *testutil.PKI, serverID string) *Agent {
	t.Helper()
	return StartWith(t, pki, serverID, StreamConfig{})
}

// StartWith is Start with the streams bounded by streams (e.g. a short
// ProxyResponseHeaderTimeout to see upstream_timeout quickly).
func StartWith(t testing.TB, pki *testutil.PKI, serverID string, streams StreamConfig) *Agent {
	t.Helper()
	if err := streams.Validate(); err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	cert, key := pki.Issue(serverID, wire.RoleAgent, true, serverID, "127.0.0.1")
	return start(t, mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, serverID, streams)
}

// FleetCert issues the certificate of an agent that answers for every
// server id in ids (StartFleet): a benchmark's fleet of thousands of
// servers in the registry, served by a few agents.
func FleetCert(pki *testutil.PKI, ids []string) mtls.Files {
	cert, key := pki.Issue(ids[0], wire.RoleAgent, true, append([]string{"127.0.0.1"}, ids...)...)
	return mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}
}

// StartFleet is Start for an agent with a FleetCert for ids (its ServerID
// is ids[0]). It may run in another process than the one that issued the
// certificate.
func StartFleet(t testing.TB, files mtls.Files, ids []string) *Agent {
	t.Helper()
	return start(t, files, ids[0], StreamConfig{})
}

func start(t testing.TB, files mtls.Files, serverID string, streams StreamConfig) *Agent {
	t.Helper()
	tlsConfig, err := mtls.ServerConfig(files, wire.RoleScheduler, wire.RoleAgent)
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	peerTLS, err := mtls.ClientConfig(files, wire.RoleAgent)
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	a := &Agent{
		ServerID: serverID,
		t:        t,
		docker:   dockerfake.New(serverID),
		events:   eventlog.New(),
		logged:   make(chan struct{}),
		addr:     l.Addr().String(),
		served:   make(chan error, 1),
		log:      &testLog{t: t},
		inflight: map[uint64]context.CancelFunc{},
		capacity: DefaultCapacity(serverID),
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "agent." + serverID, Level: hclog.Warn, Output: a.log})
	a.api = server.New(serverID, a.docker, a.Capacity, streams, log.Named("api"))
	a.DataDir = t.TempDir()
	a.api.EnableHomes(server.Homes{DataDir: a.DataDir, Service: homes.NewService(peerTLS)})
	a.api.EnableEventLog(a.events)
	a.api.Wrap(a.front)
	ctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	go func() { a.served <- a.api.Serve(ctx, l, tlsConfig) }()
	go func() {
		defer close(a.logged)
		_ = a.events.Run(ctx, a.docker, log.Named("events"))
	}()
	t.Cleanup(a.Close)
	return a
}

// DefaultCapacity is the host an Agent starts with: 4 cores at 10 %, 8 GiB
// (6 GiB available), 100 GB of disk (80 free), amd64.
func DefaultCapacity(serverID string) wire.Capacity {
	return wire.Capacity{ServerID: serverID, Architecture: "amd64", CPUCores: dockerfake.CPUs, CPUPercent: 10,
		MemoryTotalMB: dockerfake.MemoryTotalMB, MemoryAvailableMB: 6144, DiskTotalGB: 100, DiskFreeGB: 80,
		DiskPath: "/var/lib/docker"}
}

// Addr is the agent's API address, host:port on 127.0.0.1.
func (a *Agent) Addr() string { return a.addr }

// Close stops the agent: open streams end, and nothing listens on Addr any
// more. It is idempotent and also runs when the test ends.
func (a *Agent) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.cancelInflightLocked()
	a.mu.Unlock()
	a.stop()
	<-a.logged
	if err := <-a.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.t.Errorf("agenttest: agent %s stopped with %v", a.ServerID, err)
	}
	a.log.close()
}

// SetDown makes the agent answer every request with 503 unavailable at the
// HTTP level (down) or serve again (!down), as an agent that is there but
// cannot serve. Going down also ends the requests being served, so open
// event streams break.
func (a *Agent) SetDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down = down
	if down {
		a.cancelInflightLocked()
	}
}

// SetDockerDown makes the agent's Docker daemon unreachable (down) or
// healthy again: the API still answers, health says degraded, Docker calls
// fail with 502 docker_error and the event stream ends.
func (a *Agent) SetDockerDown(down bool) { a.docker.SetDown(down) }

// Wrap makes mw see every request the agent serves, before the API does
// (e.g. to hold creates until the test lets them go); mw calls next to
// serve it. A request SetDown refuses never reaches mw. nil removes it.
func (a *Agent) Wrap(mw func(next http.Handler) http.Handler) {
	if mw == nil {
		a.wrap.Store(nil)
		return
	}
	a.wrap.Store(&mw)
}

// FailCreate makes every container create answer with the wire error code
// (e.g. wire.CodeDocker, CodeNoImage, CodeStartFailed), through the API's
// own error mapping; "" makes creates succeed again.
func (a *Agent) FailCreate(code string) {
	a.t.Helper()
	a.docker.FailCreate(a.injected(code))
}

// FailNextCreate makes only the next container create answer with code.
func (a *Agent) FailNextCreate(code string) {
	a.t.Helper()
	a.docker.FailNextCreate(a.injected(code))
}

// FailUpdate makes every update of an existing container answer with code;
// "" makes updates succeed again.
func (a *Agent) FailUpdate(code string) {
	a.t.Helper()
	a.docker.FailUpdate(a.injected(code))
}

// FailPull makes every image pull end with msg as the daemon's error (the
// final NDJSON line's Error); "" makes pulls succeed again.
func (a *Agent) FailPull(msg string) { a.docker.FailPull(msg) }

// RequireImages makes creates of an image the agent does not hold fail
// with image_not_found, as the real agent does (off by default: any image
// is accepted).
func (a *Agent) RequireImages(on bool) { a.docker.RequireImages(on) }

// AddImage adds an image to the agent's daemon.
func (a *Agent) AddImage(img wire.Image) { a.docker.AddImage(img) }

// SetExec makes execs answer from fn; nil restores the default, which
// echoes the command line on stdout and exits 0.
func (a *Agent) SetExec(fn ExecFunc) { a.docker.SetExec(fn) }

// SetExecIO makes execs answer from fn, which reads the exec's input as a
// stream (SetExec's hooks find it whole in the request); nil restores the
// default.
func (a *Agent) SetExecIO(fn ExecIOFunc) { a.docker.SetExecIO(fn) }

// SetTTY makes terminal sessions (the TTY stream) run fn; nil restores the
// default, an echo terminal: what the scheduler writes is read back, and
// closing it exits 0.
func (a *Agent) SetTTY(fn TTYFunc) { a.docker.SetTTY(fn) }

// Terminals lists every terminal session opened so far, oldest first.
func (a *Agent) Terminals() []*Terminal { return a.docker.Terminals() }

// SetAddress sets the address the agent's proxy reaches every running
// container's ports at: by default 127.0.0.1, so a request for port P goes
// to whatever the test serves on 127.0.0.1:P (an httptest.Server's port).
// "" makes proxying answer 409 not_running, as for a container without a
// network address.
func (a *Agent) SetAddress(addr string) { a.docker.SetAddress(addr) }

// Exit ends a running container as if its process exited with code (a
// die event on the stream).
func (a *Agent) Exit(containerID string, code int) error { return a.docker.Exit(containerID, code) }

// OOM ends a running container as the OOM killer would (oom, then die
// with 137).
func (a *Agent) OOM(containerID string) error { return a.docker.OOM(containerID) }

// Containers returns a copy of the agent's containers, oldest first.
func (a *Agent) Containers() []wire.Container { return a.docker.Containers() }

// RemovedData lists the data paths removed through the API, in order.
func (a *Agent) RemovedData() []string { return a.docker.RemovedData() }

// SetCapacity replaces the host figures the agent reports on
// /v1/capacity. The counts of containers (all, running, workspaces), the
// reservations and SampledAt are always the live ones of its containers,
// and so is the image count while its Docker is up.
func (a *Agent) SetCapacity(c wire.Capacity) {
	a.mu.Lock()
	a.capacity = c
	a.mu.Unlock()
}

// Capacity is what the agent answers on /v1/capacity now.
func (a *Agent) Capacity() wire.Capacity {
	a.mu.Lock()
	c := a.capacity
	a.mu.Unlock()
	cs := a.docker.Containers()
	c.Containers, c.ContainersRunning, c.Workspaces = len(cs), 0, len(cs)
	for _, ctr := range cs {
		if ctr.State == "running" {
			c.ContainersRunning++
		}
	}
	if _, _, images, err := a.docker.Counts(context.Background()); err == nil {
		c.Images = images
	}
	c.ReservedCPU, c.ReservedMemoryMB = capacity.Reserved(cs)
	c.SampledAt = time.Now().UTC()
	return c
}

// LastContact is when the agent last served a request (the input of its
// fence).
func (a *Agent) LastContact() time.Time { return a.api.LastContact() }

// sentinels maps the wire codes a test can inject to the adapter errors the
// API maps back to them.
var sentinels = map[string]error{
	wire.CodeBadRequest:  docker.ErrBadRequest,
	wire.CodeNotFound:    docker.ErrNotFound,
	wire.CodeNoImage:     docker.ErrImageNotFound,
	wire.CodeStartFailed: docker.ErrStartFailed,
	wire.CodeConflict:    docker.ErrConflict,
	wire.CodeTimeout:     docker.ErrTimeout,
	wire.CodeDocker:      docker.ErrDocker,
	wire.CodeInternal:    errors.New("internal error"),
}

// injected is the error that makes the API answer with code; nil for "".
func (a *Agent) injected(code string) error {
	a.t.Helper()
	if code == "" {
		return nil
	}
	sentinel, ok := sentinels[code]
	if !ok {
		a.t.Fatalf("agenttest: the agent never answers a failure with code %q", code)
	}
	return fmt.Errorf("%w: injected failure (agenttest)", sentinel)
}

// front is the middleware in front of the API: SetDown's 503, the
// tracking of requests being served, then the test's Wrap.
func (a *Agent) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, done, ok := a.admit(r.Context())
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(wire.HeaderError, wire.CodeUnavailable)
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(wire.Error{Code: wire.CodeUnavailable, Message: "agent " + a.ServerID + " is down (agenttest)"})
			return
		}
		defer done()
		h := next
		if mw := a.wrap.Load(); mw != nil {
			h = (*mw)(next)
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// admit registers a request unless the agent is down or closed; done
// unregisters it.
func (a *Agent) admit(parent context.Context) (ctx context.Context, done func(), ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down || a.closed {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(parent)
	a.nextReq++
	id := a.nextReq
	a.inflight[id] = cancel
	return ctx, func() {
		a.mu.Lock()
		delete(a.inflight, id)
		a.mu.Unlock()
		cancel()
	}, true
}

func (a *Agent) cancelInflightLocked() {
	for _, cancel := range a.inflight {
		cancel()
	}
}

// testLog writes the agent's log to the test's log until the agent is
// closed (a test's log must not be written after the test ends).
type testLog struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) close() { l.mu.Lock(); l.closed = true; l.mu.Unlock() }
