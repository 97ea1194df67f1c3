package gitsetup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// Event kinds the setup records for a workspace.
const (
	EventStarted  = "git.setup.started"
	EventFinished = "git.setup.finished" // Data.status: done or failed
	EventCloned   = "git.repo.cloned"
	EventPresent  = "git.repo.present"
	EventFailed   = "git.repo.failed" // Data.reason says why
)

// Config are the setup's settings.
type Config struct {
	// Timeout bounds the whole setup of one workspace: configuration and
	// every clone. What it cuts short fails with ReasonTimeout.
	Timeout time.Duration
	// Workers is how many workspaces are set up at once.
	Workers int
}

// Default returns the settings berth runs with unless told otherwise.
func Default() Config { return Config{Timeout: 10 * time.Minute, Workers: 4} }

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout < time.Second {
		errs = append(errs, fmt.Errorf("git setup timeout %s: at least 1s", c.Timeout))
	}
	if c.Workers < 1 || c.Workers > 64 {
		errs = append(errs, fmt.Errorf("git setup workers %d: want 1 to 64", c.Workers))
	}
	return errors.Join(errs...)
}

// Store is the registry as the setup uses it (registry.DB).
type Store interface {
	GetWorkspace(ctx context.Context, id string) (registry.Workspace, error)
	GetCredentials(ctx context.Context, id string) (registry.Credentials, error)
	UpdateWorkspace(ctx context.Context, id string, fn func(*registry.Workspace) error) (registry.Workspace, error)
	ListWorkspaces(ctx context.Context, f registry.WorkspaceFilter) ([]registry.Workspace, error)
	AddEvent(ctx context.Context, e registry.Event) (int64, error)
}

// Execer runs a command in a running workspace on the platform's behalf:
// fenced by the workspace's epoch, not counted as the user's activity
// (orchestrator.Lifecycle.PlatformExec).
type Execer interface {
	PlatformExec(ctx context.Context, ws registry.Workspace, req wire.ExecRequest) (wire.ExecResult, error)
}

// Service sets up git in workspaces whose container was started: Pending
// and Launched say a setup is due, Run does it. It is safe for concurrent
// use; one workspace's setup never runs twice at once, and a setup that a
// later start superseded (a restart or move while it ran) stops writing
// and leaves the workspace to the new one.
type Service struct {
	cfg Config
	db  Store
	log hclog.Logger
	now func() time.Time

	mu     sync.Mutex
	queue  []string        // ids with a setup due, oldest first, each once
	queued map[string]bool // the ids in queue
	active map[string]bool // ids whose setup runs now
	wake   chan struct{}   // Run looks at the queue again
}

// New builds the service.
func New(cfg Config, db Store, log hclog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("gitsetup: a store is required")
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Service{cfg: cfg, db: db, log: log, now: time.Now, queued: map[string]bool{}, active: map[string]bool{},
		wake: make(chan struct{}, 1)}, nil
}

// Pending records in w that a setup is due (metadata.git_setup, pending,
// the next run), if the workspace has repos or an identity to set. The
// orchestrator calls it inside the write that records a started
// container, so a setup is never lost between the start and a crash; it
// does no I/O.
func (s *Service) Pending(w *registry.Workspace) {
	p := NewPlan(w.Repositories, w.Settings, "")
	if p.Empty() {
		return
	}
	run := 1
	if old, ok := StatusOf(w.Metadata); ok {
		run = old.Run + 1
	}
	if w.Metadata == nil {
		w.Metadata = map[string]any{}
	}
	newStatus(p, run, s.now()).put(w.Metadata)
}

// Launched tells the service that ws, as stored after Pending, runs: its
// setup is queued for Run. It never blocks.
func (s *Service) Launched(ws registry.Workspace) {
	if st, ok := StatusOf(ws.Metadata); ok && st.due() {
		s.enqueue(ws.ID)
	}
}

// Run sets up queued workspaces, Config.Workers at a time, until ctx ends;
// it first queues every running workspace whose setup was due or under
// way when the scheduler stopped. Setups under way when ctx ends are cut
// short and stay "running" in the metadata, for the next Run to resume.
func (s *Service) Run(ctx context.Context, exec Execer) error {
	s.resume(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.cfg.Workers)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		id, ok := s.next()
		for !ok {
			select {
			case <-s.wake:
			case <-ctx.Done():
				return nil
			}
			id, ok = s.next()
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer s.finish(id)
			s.setup(ctx, exec, id)
		})
	}
}

func (s *Service) resume(ctx context.Context) {
	rows, err := s.db.ListWorkspaces(ctx, registry.WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusRunning}})
	if err != nil {
		s.log.Warn("list workspaces to resume git setups", "error", err)
		return
	}
	for _, ws := range rows {
		s.Launched(ws)
	}
}

func (s *Service) enqueue(id string) {
	s.mu.Lock()
	if !s.queued[id] {
		s.queued[id] = true
		s.queue = append(s.queue, id)
	}
	s.mu.Unlock()
	s.poke()
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest queued id whose setup is not running now.
func (s *Service) next() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range s.queue {
		if !s.active[id] {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			delete(s.queued, id)
			s.active[id] = true
			return id, true
		}
	}
	return "", false
}

func (s *Service) finish(id string) {
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
	s.poke() // it may have been queued again meanwhile
}

// setup runs the due setup of workspace id, if it still is due and the
// workspace runs (a stopped one is set up at its next start).
func (s *Service) setup(ctx context.Context, exec Execer, id string) {
	ws, err := s.db.GetWorkspace(ctx, id)
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("read workspace for git setup", "workspace_id", id, "error", err)
		}
		return
	}
	st, ok := StatusOf(ws.Metadata)
	if !ok || !st.due() || ws.Status != fleet.StatusRunning {
		return
	}
	creds, err := s.db.GetCredentials(ctx, id)
	if err != nil {
		s.log.Warn("read workspace credentials for git setup; going on without", "workspace_id", id, "error", err)
	}
	plan := NewPlan(ws.Repositories, ws.Settings, creds.Git)
	r := &setupRun{s: s, exec: exec, ws: ws, plan: plan, status: newStatus(plan, st.Run, st.RequestedAt)}
	switch {
	case plan.CredentialsErr != nil:
		r.status.Credentials = CredentialsInvalid
	case plan.store != nil:
		r.status.Credentials = CredentialsStored
	case strings.TrimSpace(creds.Git) == "":
		r.status.Credentials = CredentialsNone
	default:
		r.status.Credentials = CredentialsUnused
	}
	r.run(ctx)
}

// errSuperseded: a later start of the workspace made another setup due.
var errSuperseded = errors.New("git setup superseded by a later one")

// setupRun is one setup of one workspace.
type setupRun struct {
	s      *Service
	exec   Execer
	ws     registry.Workspace // as last stored
	plan   Plan
	status Status
}

func (r *setupRun) run(ctx context.Context) {
	start := r.s.now()
	r.status.State, r.status.StartedAt = StateRunning, start.UTC()
	if !r.save(ctx) {
		return
	}
	r.event(ctx, EventStarted, fmt.Sprintf("git setup %d started: %d repositories", r.status.Run, len(r.plan.Repos)),
		map[string]any{"run": r.status.Run, "repos": len(r.plan.Repos), "credentials": string(r.status.Credentials)})
	tctx, cancel := context.WithTimeout(ctx, r.s.cfg.Timeout)
	defer cancel()

	res, err := r.do(tctx, r.plan.ConfigureRequest(remaining(tctx)))
	if reason, msg := r.failure(ctx, tctx, res, err); reason != "" {
		r.status.Reason, r.status.Error = reason, "git configuration failed: "+msg
		r.skipRest(0, reason, "not attempted: the git configuration failed")
		r.finish(ctx, start)
		return
	}
	for i, e := range r.plan.Repos {
		rs := &r.status.Repos[i]
		if rs.State == RepoFailed { // refused before git ran
			r.repoEvent(ctx, *rs)
			continue
		}
		rs.State = RepoCloning
		if !r.save(ctx) {
			return
		}
		t0 := r.s.now()
		res, err := r.do(tctx, r.plan.CloneRequest(e, remaining(tctx)))
		rs.Seconds = math.Round(r.s.now().Sub(t0).Seconds()*100) / 100
		reason, msg := r.failure(ctx, tctx, res, err)
		switch {
		case reason != "":
			rs.State, rs.Reason, rs.Error = RepoFailed, reason, msg
		case lastLine(res.Stdout) == outPresent:
			rs.State = RepoPresent
		default:
			rs.State = RepoCloned
		}
		r.repoEvent(ctx, *rs) // before the save: whoever sees the outcome in the metadata finds its event
		if !r.save(ctx) {
			return
		}
		if reason == ReasonTimeout || reason == ReasonInterrupted {
			r.skipRest(i+1, reason, "not attempted: "+msg)
			break
		}
	}
	r.finish(ctx, start)
}

// do runs req in the workspace as last stored.
func (r *setupRun) do(ctx context.Context, req wire.ExecRequest) (wire.ExecResult, error) {
	if err := ctx.Err(); err != nil {
		return wire.ExecResult{}, err
	}
	return r.exec.PlatformExec(ctx, r.ws, req)
}

// failure says why an exec failed: "" when it did not. Its message is
// redacted.
func (r *setupRun) failure(ctx, tctx context.Context, res wire.ExecResult, err error) (Reason, string) {
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded):
		return ReasonTimeout, fmt.Sprintf("the setup took longer than %s", r.s.cfg.Timeout)
	case err != nil:
		return ReasonInterrupted, r.plan.red.redact(err.Error())
	case res.TimedOut:
		return ReasonTimeout, fmt.Sprintf("the setup took longer than %s", r.s.cfg.Timeout)
	case res.ExitCode == 0:
		return "", ""
	}
	stderr := string(res.Stderr)
	msg := r.plan.red.redact(errorLine(stderr))
	if msg == "" {
		msg = fmt.Sprintf("exit code %d", res.ExitCode)
	}
	if res.ExitCode == exitDirNotEmpty {
		return ReasonDirNotEmpty, msg
	}
	return Classify(stderr), msg
}

// skipRest fails every repo from the i-th on that is still pending.
func (r *setupRun) skipRest(i int, reason Reason, msg string) {
	for j := i; j < len(r.status.Repos); j++ {
		if rs := &r.status.Repos[j]; rs.State == RepoPending {
			rs.State, rs.Reason, rs.Error = RepoFailed, reason, msg
		}
	}
}

func (r *setupRun) finish(ctx context.Context, start time.Time) {
	counts := map[RepoState]int{}
	for _, rs := range r.status.Repos {
		counts[rs.State]++
	}
	r.status.State = StateDone
	if r.status.Reason != "" || counts[RepoFailed] > 0 {
		r.status.State = StateFailed
	}
	r.status.FinishedAt = r.s.now().UTC()
	took := r.s.now().Sub(start).Round(time.Millisecond)
	msg := fmt.Sprintf("git setup %d %s in %s: %d cloned, %d present, %d failed", r.status.Run, r.status.State, took,
		counts[RepoCloned], counts[RepoPresent], counts[RepoFailed])
	if r.status.Error != "" {
		msg += "; " + r.status.Error
	}
	r.event(ctx, EventFinished, msg, map[string]any{"run": r.status.Run, "status": string(r.status.State),
		"cloned": counts[RepoCloned], "present": counts[RepoPresent], "failed": counts[RepoFailed], "reason": string(r.status.Reason)})
	if !r.save(ctx) { // after the event: a finished setup in the metadata has its event
		return
	}
	r.s.log.Info("git setup finished", "workspace_id", r.ws.ID, "run", r.status.Run, "status", r.status.State,
		"cloned", counts[RepoCloned], "present", counts[RepoPresent], "failed", counts[RepoFailed], "took", took)
}

func (r *setupRun) repoEvent(ctx context.Context, rs RepoStatus) {
	data := map[string]any{"run": r.status.Run, "url": rs.URL, "dir": rs.Dir, "seconds": rs.Seconds}
	switch rs.State {
	case RepoCloned:
		r.event(ctx, EventCloned, fmt.Sprintf("cloned %s into %s", rs.URL, rs.Dir), data)
	case RepoPresent:
		r.event(ctx, EventPresent, fmt.Sprintf("%s already holds a clone: left as it is", rs.Dir), data)
	case RepoFailed:
		data["reason"], data["error"] = string(rs.Reason), rs.Error
		r.event(ctx, EventFailed, fmt.Sprintf("could not clone %s (%s): %s", rs.URL, rs.Reason, rs.Error), data)
		r.s.log.Warn("git clone failed", "workspace_id", r.ws.ID, "repo", rs.URL, "reason", rs.Reason, "error", rs.Error)
	}
}

// save writes the status into the workspace's metadata, unless a later
// start superseded this setup (or the workspace is gone): then it reports
// false and the setup stops. A failed write is logged and the setup goes
// on.
func (r *setupRun) save(ctx context.Context) bool {
	ws, err := r.s.db.UpdateWorkspace(ctx, r.ws.ID, func(w *registry.Workspace) error {
		if cur, ok := StatusOf(w.Metadata); !ok || cur.Run != r.status.Run {
			return errSuperseded
		}
		r.status.put(w.Metadata)
		return nil
	})
	switch {
	case errors.Is(err, errSuperseded), errors.Is(err, registry.ErrNotFound):
		r.s.log.Debug("git setup stopped", "workspace_id", r.ws.ID, "run", r.status.Run, "why", err)
		return false
	case err != nil:
		if ctx.Err() != nil {
			return false // the scheduler stops: the next Run resumes this setup
		}
		r.s.log.Warn("record git setup progress", "workspace_id", r.ws.ID, "error", err)
		return true
	}
	r.ws = ws
	return true
}

func (r *setupRun) event(ctx context.Context, kind, msg string, data map[string]any) {
	if _, err := r.s.db.AddEvent(ctx, registry.Event{Kind: kind, ServerID: r.ws.ServerID, WorkspaceID: r.ws.ID,
		Message: msg, Data: data}); err != nil && ctx.Err() == nil {
		r.s.log.Warn("record event", "kind", kind, "error", err)
	}
}

// remaining is the time left before ctx's deadline.
func remaining(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), 0)
	}
	return 0
}

// lastLine is the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
