package dockerfake

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"berth/agent/internal/docker"
	"berth/shared/wire"
)

// DataDir is the data directory mount sources and data paths are checked
// against (lexically: nothing is created on this machine).
const DataDir = "/var/lib/berth"

// Fixed figures of the fake host.
const (
	CPUs          = 4
	MemoryTotalMB = 8192
)

// Figures of a running container's Stats.
const (
	StatsCPUPercent   = 12.5
	StatsMemoryUsedMB = 256
)

// ExecFunc answers an exec in place of a process: it writes the output and
// returns the exit code. ctx carries the request's timeout, if any; an
// ExecFunc that waits should return when ctx ends.
type ExecFunc func(ctx context.Context, c wire.Container, req wire.ExecRequest, stdout, stderr io.Writer) (exitCode int, err error)

// EchoExec is the default ExecFunc: it writes the command line and a
// newline to stdout and exits 0.
func EchoExec(_ context.Context, _ wire.Container, req wire.ExecRequest, stdout, _ io.Writer) (int, error) {
	_, err := io.WriteString(stdout, strings.Join(req.Cmd, " ")+"\n")
	return 0, err
}

// ExecIOFunc is an ExecFunc that reads the process's input as a stream
// (see SetExecIO): stdin is never nil (empty when the exec has no input),
// and the request's Stdin has been moved into it.
type ExecIOFunc func(ctx context.Context, c wire.Container, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (exitCode int, err error)

// withInput adapts an ExecFunc: its input, read whole, is in req.Stdin.
func withInput(fn ExecFunc) ExecIOFunc {
	return func(ctx context.Context, c wire.Container, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		in, err := io.ReadAll(stdin)
		if err != nil {
			return 0, err
		}
		req.Stdin = in
		if len(in) == 0 {
			req.Stdin = nil
		}
		return fn(ctx, c, req, stdout, stderr)
	}
}

// Fake is an in-memory Docker daemon. Build it with New.
type Fake struct {
	serverID string
	now      func() time.Time

	mu          sync.Mutex
	containers  map[string]*entry // by ID
	seq         int
	images      []wire.Image
	removedData []string
	subs        map[*subscriber]struct{}

	down           bool
	failCreate     error
	failNextCreate error
	failUpdate     error
	failPull       string
	requireImages  bool
	exec           ExecIOFunc
	tty            TTYFunc
	address        string
	terminals      []*Terminal
}

type entry struct {
	c    wire.Container
	seq  int
	ttys []*fakeTTY // the TTY sessions opened since its last start
}

// New is an empty daemon for serverID (the berth.server_id label) holding
// one image, berth/workspace:dev.
func New(serverID string) *Fake {
	return &Fake{
		serverID:   serverID,
		now:        time.Now,
		containers: map[string]*entry{},
		subs:       map[*subscriber]struct{}{},
		images: []wire.Image{{ID: "sha256:" + strings.Repeat("ab", 32), Tags: []string{"berth/workspace:dev"},
			Size: 300 << 20, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}},
		exec:    withInput(EchoExec),
		tty:     EchoTTY,
		address: DefaultAddress,
	}
}

// --- knobs

// FailCreate makes every Create fail with err (nil: succeed again), after
// validation and before anything is made. Use the adapter's sentinels, e.g.
// fmt.Errorf("%w: injected", docker.ErrImageNotFound).
func (f *Fake) FailCreate(err error) { f.mu.Lock(); f.failCreate = err; f.mu.Unlock() }

// FailNextCreate makes the next Create only fail with err.
func (f *Fake) FailNextCreate(err error) { f.mu.Lock(); f.failNextCreate = err; f.mu.Unlock() }

// FailUpdate makes every Update of an existing container fail with err
// (nil: succeed again).
func (f *Fake) FailUpdate(err error) { f.mu.Lock(); f.failUpdate = err; f.mu.Unlock() }

// FailPull makes every Pull end with msg as the daemon's error message in
// the progress stream, as a refused pull does ("": succeed again).
func (f *Fake) FailPull(msg string) { f.mu.Lock(); f.failPull = msg; f.mu.Unlock() }

// SetDown makes the fake behave as an unreachable daemon (true) or a
// healthy one again (false). Going down ends every open event stream with
// an error.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	if down {
		for s := range f.subs {
			s.failLocked(errDown())
		}
	}
}

// RequireImages makes Create refuse (docker.ErrImageNotFound) an image the
// fake does not hold, as the real adapter does. Off by default: any image
// is accepted.
func (f *Fake) RequireImages(on bool) { f.mu.Lock(); f.requireImages = on; f.mu.Unlock() }

// SetExec replaces the exec hook; nil restores EchoExec. The hook sees the
// exec's input, read whole, in req.Stdin; SetExecIO's hooks read it as a
// stream.
func (f *Fake) SetExec(fn ExecFunc) {
	if fn == nil {
		fn = EchoExec
	}
	f.SetExecIO(withInput(fn))
}

// SetExecIO replaces the exec hook with one that reads the input as a
// stream; nil restores EchoExec.
func (f *Fake) SetExecIO(fn ExecIOFunc) {
	if fn == nil {
		fn = withInput(EchoExec)
	}
	f.mu.Lock()
	f.exec = fn
	f.mu.Unlock()
}

// AddImage adds img to the daemon's images.
func (f *Fake) AddImage(img wire.Image) { f.mu.Lock(); f.images = append(f.images, img); f.mu.Unlock() }

// Exit ends a running container as if its process exited on its own with
// code: die event, state exited.
func (f *Fake) Exit(id string, code int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.runningLocked(id)
	if err != nil {
		return err
	}
	f.exitLocked(e, code, false)
	return nil
}

// OOM ends a running container as the kernel's OOM killer would: oom
// event, then die with 137, state exited with OOMKilled set.
func (f *Fake) OOM(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.runningLocked(id)
	if err != nil {
		return err
	}
	f.emitLocked("oom", e, 0)
	f.exitLocked(e, 137, true)
	return nil
}

// Containers returns a copy of every container, oldest first.
func (f *Fake) Containers() []wire.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listLocked()
}

// RemovedData lists the data paths removed so far, in order.
func (f *Fake) RemovedData() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removedData)
}

// Subscribers is the number of open event streams.
func (f *Fake) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// --- the adapter's methods

// Ping fails with docker.ErrDocker while the fake is down.
func (f *Fake) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown()
	}
	return nil
}

// Info returns the fixed facts of the fake daemon with its counts.
func (f *Fake) Info(context.Context) (wire.DockerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return wire.DockerInfo{}, errDown()
	}
	return wire.DockerInfo{ServerVersion: "fake-1.0", OS: "Fake Linux", Architecture: "x86_64",
		Containers: len(f.containers), Images: len(f.images), MemoryTotal: MemoryTotalMB << 20, CPUs: CPUs,
		DataRoot: "/var/lib/docker"}, nil
}

// Counts returns the container (all, running) and image counts (the
// capacity sampler's DockerFacts).
func (f *Fake) Counts(context.Context) (containers, running, images int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, 0, 0, errDown()
	}
	for _, e := range f.containers {
		if e.c.State == "running" {
			running++
		}
	}
	return len(f.containers), running, len(f.images), nil
}

// Create validates req as the adapter does, then makes the container
// (started when req.Start) with berth's labels, emitting create (and
// start).
func (f *Fake) Create(_ context.Context, req wire.CreateContainerRequest) (wire.Container, error) {
	if err := docker.ValidateCreate(req, DataDir); err != nil {
		return wire.Container{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return wire.Container{}, errDown()
	}
	if err := f.failNextCreate; err != nil {
		f.failNextCreate = nil
		return wire.Container{}, err
	}
	if f.failCreate != nil {
		return wire.Container{}, f.failCreate
	}
	if f.requireImages && !f.hasImageLocked(req.Image) {
		return wire.Container{}, fmt.Errorf("%w: %s is not in the local daemon", docker.ErrImageNotFound, req.Image)
	}
	for _, e := range f.containers {
		if e.c.Name == req.Name {
			return wire.Container{}, fmt.Errorf("%w: create container %s: the name is already in use by %s", docker.ErrConflict, req.Name, e.c.ID)
		}
	}
	f.seq++
	e := &entry{seq: f.seq, c: wire.Container{
		ID:        fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(f.serverID, "/", f.seq)))),
		Name:      req.Name,
		Image:     req.Image,
		State:     "created",
		Status:    "Created",
		Labels:    docker.ContainerLabels(req, f.serverID),
		Resources: req.Resources,
		CreatedAt: f.now().UTC(),
	}}
	f.containers[e.c.ID] = e
	f.emitLocked("create", e, 0)
	if req.Start {
		f.startLocked(e)
	}
	return copyContainer(e.c), nil
}

// Start starts a created or exited container; a running one is left as it
// is.
func (f *Fake) Start(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return err
	}
	if e.c.State != "running" {
		f.startLocked(e)
	}
	return nil
}

// Stop stops a running container as SIGTERM through its init would (kill,
// die with 143, stop); a stopped one is left as it is.
func (f *Fake) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return err
	}
	if e.c.State == "running" {
		f.emitLocked("kill", e, 0)
		f.exitLocked(e, 143, false)
		f.emitLocked("stop", e, 0)
	}
	return nil
}

// Remove deletes a container (destroy). A running one needs force
// (docker.ErrConflict otherwise) and is killed first.
func (f *Fake) Remove(_ context.Context, id string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return err
	}
	if e.c.State == "running" {
		if !force {
			return fmt.Errorf("%w: remove container %s: it is running: stop it first or force the removal", docker.ErrConflict, id)
		}
		f.emitLocked("kill", e, 0)
		f.exitLocked(e, 137, false)
	}
	delete(f.containers, e.c.ID)
	f.emitLocked("destroy", e, 0)
	return nil
}

// Inspect returns one container, by ID or name.
func (f *Fake) Inspect(_ context.Context, id string) (wire.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return wire.Container{}, err
	}
	return copyContainer(e.c), nil
}

// List returns every container, oldest first.
func (f *Fake) List(context.Context) ([]wire.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errDown()
	}
	return f.listLocked(), nil
}

// Exec answers from the exec hook, in a running container only
// (docker.ErrConflict otherwise). With req.TimeoutSeconds, a hook still
// running when it passes is abandoned and Exec answers as the adapter does:
// exit docker.ExecTimeoutExitCode, timed out. The input is stdin or
// req.Stdin, as for the adapter (docker.ExecInput); when reading it fails,
// Exec fails with docker.ErrBadRequest, as the adapter does, whatever the
// hook answered.
func (f *Fake) Exec(ctx context.Context, id string, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, bool, error) {
	if err := docker.ValidateExec(req); err != nil {
		return 0, false, err
	}
	stdin, err := docker.ExecInput(req, stdin)
	if err != nil {
		return 0, false, err
	}
	req.Stdin = nil
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	in := &inputRecorder{r: stdin}
	f.mu.Lock()
	e, err := f.ownedLocked(id)
	if err == nil && e.c.State != "running" {
		err = fmt.Errorf("%w: container %s is not running", docker.ErrConflict, id)
	}
	var c wire.Container
	if err == nil {
		c = copyContainer(e.c)
	}
	hook := f.exec
	f.mu.Unlock()
	if err != nil {
		return 0, false, err
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	hctx := ctx
	if req.TimeoutSeconds > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Second)
		defer cancel()
	}
	code, err := hook(hctx, c, req, in, stdout, stderr)
	switch {
	case in.err != nil:
		return 0, false, fmt.Errorf("%w: exec input of %s broke off: %w", docker.ErrBadRequest, id, in.err)
	case ctx.Err() != nil:
		return docker.ExecTimeoutExitCode, true, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	case hctx.Err() != nil:
		return docker.ExecTimeoutExitCode, true, nil
	case err != nil:
		return 0, false, fmt.Errorf("%w: exec output of %s: %w", docker.ErrDocker, id, err)
	}
	return code, false, nil
}

// inputRecorder keeps the first read error of an exec's input (its end is
// not one).
type inputRecorder struct {
	r   io.Reader
	err error
}

func (r *inputRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}

// Stats returns fixed figures for a running container (12.5 % CPU, 256 MB
// used, its limits, the uptime since its start) and the adapter's defaults
// for a stopped one.
func (f *Fake) Stats(_ context.Context, id string) (wire.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return wire.ContainerStats{}, err
	}
	c, now := e.c, f.now().UTC()
	out := wire.ContainerStats{CPULimitCores: 1, MemoryLimitMB: 1024, CollectedAt: now}
	if c.Resources.CPU > 0 {
		out.CPULimitCores = c.Resources.CPU
	}
	if c.State != "running" {
		return out, nil
	}
	if c.Resources.CPU == 0 {
		out.CPULimitCores = CPUs
	}
	out.MemoryLimitMB = MemoryTotalMB
	if c.Resources.MemoryMB > 0 {
		out.MemoryLimitMB = c.Resources.MemoryMB
	}
	out.CPUPercent = StatsCPUPercent
	out.MemoryUsedMB = min(StatsMemoryUsedMB, out.MemoryLimitMB)
	out.MemoryPercent = float64(out.MemoryUsedMB) / float64(out.MemoryLimitMB) * 100
	out.UptimeSeconds = int64(now.Sub(c.StartedAt).Seconds())
	return out, nil
}

// Update changes a container's limits; a zero field is left unchanged
// (Docker's rule).
func (f *Fake) Update(_ context.Context, id string, r wire.Resources) error {
	if err := docker.ValidateResources(r); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.ownedLocked(id)
	if err != nil {
		return err
	}
	if f.failUpdate != nil {
		return f.failUpdate
	}
	if r.CPU > 0 {
		e.c.Resources.CPU = r.CPU
	}
	if r.MemoryMB > 0 {
		e.c.Resources.MemoryMB = r.MemoryMB
	}
	return nil
}

// Images returns a copy of the daemon's images.
func (f *Fake) Images(context.Context) ([]wire.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errDown()
	}
	out := make([]wire.Image, len(f.images))
	for i, img := range f.images {
		img.Tags = slices.Clone(img.Tags)
		out[i] = img
	}
	return out, nil
}

// Pull reports two progress messages and adds the image (":latest" when
// ref has no tag), or with FailPull set reports the failure message and
// fails as the adapter does on an error in the daemon's stream.
func (f *Fake) Pull(_ context.Context, ref string, progress func(wire.PullProgress)) error {
	if err := docker.ValidateImageRef(ref); err != nil {
		return err
	}
	if progress == nil {
		progress = func(wire.PullProgress) {}
	}
	f.mu.Lock()
	down, failMsg := f.down, f.failPull
	f.mu.Unlock()
	if down {
		return fmt.Errorf("pull %s: %w", ref, errDown())
	}
	name, tag := splitRef(ref)
	progress(wire.PullProgress{Status: "Pulling from " + name, ID: tag})
	progress(wire.PullProgress{Status: "Downloading", ID: "layer1", Progress: "[=====>    ] 5MB/10MB"})
	if failMsg != "" {
		progress(wire.PullProgress{Error: failMsg})
		return fmt.Errorf("pull %s: %w: %s", ref, docker.ErrDocker, failMsg)
	}
	full := name + ":" + tag
	f.mu.Lock()
	f.images = slices.DeleteFunc(f.images, func(img wire.Image) bool { return slices.Equal(img.Tags, []string{full}) })
	f.images = append(f.images, wire.Image{ID: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(full))), Tags: []string{full},
		Size: 10 << 20, Created: f.now().UTC()})
	f.mu.Unlock()
	progress(wire.PullProgress{Status: "Status: Downloaded newer image for " + full})
	return nil
}

// splitRef splits an image reference into name and tag, "latest" when it
// has none (a digest reference keeps its digest as the "tag").
func splitRef(ref string) (name, tag string) {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// RemoveData records the removal of a data path below DataDir, refusing
// what the adapter refuses. Every valid path exists.
func (f *Fake) RemoveData(rel string) error {
	if err := docker.ValidateDataPath(DataDir, rel); err != nil {
		return err
	}
	f.mu.Lock()
	f.removedData = append(f.removedData, rel)
	f.mu.Unlock()
	return nil
}

// --- helpers; the ones ending in Locked need f.mu held

func errDown() error {
	return fmt.Errorf("%w: cannot connect to the Docker daemon (dockerfake is down)", docker.ErrDocker)
}

// ownedLocked finds a container by ID or name, with the adapter's errors.
func (f *Fake) ownedLocked(id string) (*entry, error) {
	if f.down {
		return nil, errDown()
	}
	if strings.TrimSpace(id) == "" {
		return nil, fmt.Errorf("%w: container id is required", docker.ErrBadRequest)
	}
	if e, ok := f.containers[id]; ok {
		return e, nil
	}
	for _, e := range f.containers {
		if e.c.Name == id {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w: inspect container %s: no such container", docker.ErrNotFound, id)
}

func (f *Fake) runningLocked(id string) (*entry, error) {
	e, err := f.ownedLocked(id)
	if err == nil && e.c.State != "running" {
		err = fmt.Errorf("%w: container %s is not running", docker.ErrConflict, id)
	}
	return e, err
}

func (f *Fake) hasImageLocked(ref string) bool {
	name, tag := splitRef(ref)
	for _, img := range f.images {
		if img.ID == ref || slices.Contains(img.Tags, name+":"+tag) {
			return true
		}
	}
	return false
}

func (f *Fake) listLocked() []wire.Container {
	es := slices.Collect(maps.Values(f.containers))
	slices.SortFunc(es, func(a, b *entry) int { return a.seq - b.seq })
	out := make([]wire.Container, len(es))
	for i, e := range es {
		out[i] = copyContainer(e.c)
	}
	return out
}

func (f *Fake) startLocked(e *entry) {
	e.c.State, e.c.Status = "running", "Up"
	e.c.ExitCode, e.c.OOMKilled = 0, false
	e.c.StartedAt, e.c.FinishedAt = f.now().UTC(), time.Time{}
	e.c.IPAddress = f.address
	f.emitLocked("start", e, 0)
}

func (f *Fake) exitLocked(e *entry, code int, oom bool) {
	e.c.State, e.c.Status = "exited", fmt.Sprintf("Exited (%d)", code)
	e.c.ExitCode, e.c.OOMKilled = code, oom
	e.c.FinishedAt = f.now().UTC()
	e.c.IPAddress = ""
	for _, s := range e.ttys {
		s.kill()
	}
	e.ttys = nil
	f.emitLocked("die", e, code)
}

func copyContainer(c wire.Container) wire.Container {
	c.Labels = maps.Clone(c.Labels)
	return c
}
