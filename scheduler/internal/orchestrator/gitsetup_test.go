package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/gitsetup"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// fakeGit plays git in the in-memory Docker: it answers the setup's execs
// by their script ($0) and URL, remembers what it cloned, and records every
// request.
type fakeGit struct {
	mu     sync.Mutex
	reqs   []wire.ExecRequest
	cloned map[string]bool // directories
	gate   chan struct{}   // "slow" repos wait for it (or for the exec's end)
	held   chan string     // a "slow" clone has begun: its URL
}

func newFakeGit() *fakeGit {
	return &fakeGit{cloned: map[string]bool{}, gate: make(chan struct{}), held: make(chan string, 16)}
}

func (g *fakeGit) exec(ctx context.Context, _ wire.Container, req wire.ExecRequest, stdout, stderr io.Writer) (int, error) {
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	g.mu.Unlock()
	if len(req.Cmd) < 4 || req.Cmd[3] != "berth-git-clone" {
		return 0, nil // the configuration
	}
	url, dir := req.Cmd[4], req.Cmd[5]
	g.mu.Lock()
	present := g.cloned[dir]
	g.mu.Unlock()
	switch {
	case present:
		_, err := io.WriteString(stdout, "present\n")
		return 0, err
	case strings.Contains(url, "badcreds"):
		_, err := fmt.Fprintf(stderr, "fatal: Authentication failed for '%s/'\n", url)
		return 128, err
	case strings.Contains(url, "nobranch"):
		_, err := fmt.Fprintf(stderr, "warning: Could not find remote branch %[1]s to clone.\nfatal: Remote branch %[1]s not found in upstream origin\n", req.Cmd[6])
		return 128, err
	case strings.Contains(url, "down"):
		_, err := io.WriteString(stderr, "fatal: unable to access 'https://down.example.com/x.git/': Could not resolve host: down.example.com\n")
		return 128, err
	case strings.Contains(url, "slow"):
		g.held <- url
		select {
		case <-g.gate:
		case <-ctx.Done():
			return 124, nil
		}
	}
	g.mu.Lock()
	g.cloned[dir] = true
	g.mu.Unlock()
	_, err := io.WriteString(stdout, "cloned\n")
	return 0, err
}

func (g *fakeGit) requests() []wire.ExecRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reqs)
}

// gitRig is a rig whose orchestrator has a git setup service running.
type gitRig struct {
	*rig
	orch *orchestrator.Orchestrator
	git  *fakeGit
}

func newGitRig(t *testing.T, cfg gitsetup.Config) *gitRig {
	r := newRig(t, 4, "ws-1")
	svc, err := gitsetup.New(cfg, r.db, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	g := &gitRig{rig: r, git: newFakeGit()}
	g.orch = r.with(func(_ *orchestrator.Config, d *orchestrator.Deps) { d.GitSetup = svc })
	r.agents["ws-1"].SetExec(g.git.exec)
	runService(t, svc, g.orch)
	return g
}

// runService runs svc until the test ends.
func runService(t *testing.T, svc *gitsetup.Service, exec gitsetup.Execer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, exec) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("git setup Run: %v", err)
		}
	})
}

// setupOf waits until the workspace's git setup of run has finished, and
// returns it.
func (g *gitRig) setupOf(id string, run int) gitsetup.Status {
	g.t.Helper()
	var st gitsetup.Status
	waitFor(g.t, fmt.Sprintf("git setup %d of %s finished", run, id), func() bool {
		ws, err := g.db.GetWorkspace(context.Background(), id)
		if err != nil {
			return false
		}
		var ok bool
		st, ok = gitsetup.StatusOf(ws.Metadata)
		return ok && st.Run == run && (st.State == gitsetup.StateDone || st.State == gitsetup.StateFailed)
	})
	return st
}

func gitEvents(r *rig, id string) []string {
	var out []string
	for _, e := range r.events(id) {
		if strings.HasPrefix(e, "git.") {
			out = append(out, strings.TrimSuffix(e, "@ws-1"))
		}
	}
	return out
}

type repoOutcome struct {
	URL, Dir string
	State    gitsetup.RepoState
	Reason   gitsetup.Reason
}

func outcomes(st gitsetup.Status) []repoOutcome {
	var out []repoOutcome
	for _, r := range st.Repos {
		out = append(out, repoOutcome{r.URL, r.Dir, r.State, r.Reason})
	}
	return out
}

// A create hands its repos, identity and credentials to the git setup: the
// answer shows the setup pending, the setup runs in the background through
// the agent's exec (credentials only on the input), every repo's outcome
// and reason reach the metadata and the events, and a failed repo leaves
// the workspace running. A restart sets up again and leaves a clone that is
// there as it is.
func TestGitSetupAtCreateAndRestart(t *testing.T) {
	const secret = "s3cret-T0ken"
	ctx := context.Background()
	g := newGitRig(t, gitsetup.Default())
	creates := captureCreates(t, g.agents["ws-1"])
	req := createReq("w1", "u1")
	req.Config.Repos = []string{"https://git.example.com/team/app.git", "https://git.example.com/team/badcreds.git",
		"https://git.example.com/team/nobranch", "https://down.example.com/x/down.git", "ftp://git.example.com/old.git",
		"https://git.example.com/team/.ssh"}
	req.Config.Settings = registry.Settings{GitName: "Ada", GitEmail: "ada@example.com", GitBranch: "feature-x"}
	req.Config.GitCredentials = "ada:" + secret
	before := time.Now()
	ws, err := g.orch.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}

	// The create's answer: pending, the refused entries failed at once.
	st, ok := gitsetup.StatusOf(ws.Metadata)
	if !ok || st.State != gitsetup.StatePending || st.Run != 1 || len(st.Repos) != 6 {
		t.Fatalf("git setup in the create's answer: got %+v (%v), want run 1 pending with 6 repos", st, ok)
	}
	if st.Repos[4].Reason != gitsetup.ReasonUnsupportedURL || st.Repos[5].Reason != gitsetup.ReasonUnsafeName {
		t.Errorf("refused entries in the answer: got %+v", st.Repos[4:])
	}

	st = g.setupOf("w1", 1)
	want := []repoOutcome{
		{"https://git.example.com/team/app.git", "/home/dev/app", gitsetup.RepoCloned, ""},
		{"https://git.example.com/team/badcreds.git", "/home/dev/badcreds", gitsetup.RepoFailed, gitsetup.ReasonBadCredentials},
		{"https://git.example.com/team/nobranch", "/home/dev/nobranch", gitsetup.RepoFailed, gitsetup.ReasonBranchNotFound},
		{"https://down.example.com/x/down.git", "/home/dev/down", gitsetup.RepoFailed, gitsetup.ReasonUnreachable},
		{"ftp://git.example.com/old.git", "", gitsetup.RepoFailed, gitsetup.ReasonUnsupportedURL},
		{"https://git.example.com/team/.ssh", "", gitsetup.RepoFailed, gitsetup.ReasonUnsafeName},
	}
	if d := cmp.Diff(want, outcomes(st)); d != "" {
		t.Errorf("repos after the setup (-want +got):\n%s", d)
	}
	if st.State != gitsetup.StateFailed || st.Credentials != gitsetup.CredentialsStored || st.Branch != "feature-x" {
		t.Errorf("setup: got %s, credentials %s, branch %s; want failed, stored, feature-x", st.State, st.Credentials, st.Branch)
	}
	if st.Repos[1].Error != "fatal: Authentication failed for 'https://git.example.com/team/badcreds.git/'" {
		t.Errorf("error of the refused clone: got %q", st.Repos[1].Error)
	}
	ws, err = g.orch.Get(ctx, "w1")
	if err != nil || ws.Status != "running" {
		t.Errorf("workspace after failed clones: got %s, %v; want running", ws.Status, err)
	}
	if !ws.LastActivity.Before(before.Add(time.Second)) || ws.LastActivity.Before(before.Add(-time.Second)) {
		t.Errorf("last_activity moved with the setup: %v (create at %v)", ws.LastActivity, before)
	}

	// What reached the agent: a configuration, then one clone per usable
	// repo, as dev, the credentials only on the input.
	reqs := g.git.requests()
	var scripts []string
	for _, r := range reqs {
		scripts = append(scripts, r.Cmd[3])
		if r.User != "dev" || r.Env["GIT_TERMINAL_PROMPT"] != "0" {
			t.Errorf("exec %s: user %q, env %v; want dev, non-interactive", r.Cmd[3], r.User, r.Env)
		}
		if strings.Contains(strings.Join(r.Cmd, " "), secret) || strings.Contains(fmt.Sprint(r.Env), secret) {
			t.Errorf("exec %s carries the secret in its command or environment", r.Cmd[3])
		}
		if want := "https://ada:" + secret + "@git.example.com\nhttps://ada:" + secret + "@down.example.com\n"; string(r.Stdin) != want {
			t.Errorf("exec %s input: got %q, want the store file", r.Cmd[3], r.Stdin)
		}
	}
	if d := cmp.Diff([]string{"berth-git-setup", "berth-git-clone", "berth-git-clone", "berth-git-clone", "berth-git-clone"}, scripts); d != "" {
		t.Errorf("execs (-want +got):\n%s", d)
	}
	if cfg := reqs[0].Cmd[4:]; !slices.Equal(cfg, []string{"Ada", "ada@example.com", gitsetup.StorePath, "1"}) {
		t.Errorf("configuration arguments: got %q", cfg)
	}

	// Nothing of the secret in the container's environment, the row, the
	// events.
	for _, c := range creates() {
		for k, v := range c.Env {
			if strings.HasPrefix(k, "GIT_") || strings.Contains(v, secret) {
				t.Errorf("container environment has %s=%s", k, v)
			}
		}
	}
	raw, _ := json.Marshal(ws)
	evs, _ := g.db.ListEvents(ctx, registry.EventFilter{WorkspaceID: "w1", Limit: 1000})
	rawEvents, _ := json.Marshal(evs)
	if strings.Contains(string(raw)+string(rawEvents), secret) {
		t.Errorf("the secret is in the row or the events")
	}
	wantEvents := []string{"git.setup.started", "git.repo.cloned", "git.repo.failed", "git.repo.failed", "git.repo.failed",
		"git.repo.failed", "git.repo.failed", "git.setup.finished"}
	if d := cmp.Diff(wantEvents, gitEvents(g.rig, "w1")); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}

	// A restart sets up again: the clone that is there stays, the others
	// are tried again.
	if err := g.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	st = g.setupOf("w1", 2)
	if got := outcomes(st); got[0].State != gitsetup.RepoPresent || got[1].Reason != gitsetup.ReasonBadCredentials {
		t.Errorf("after the restart: got %+v, want app present and badcreds refused again", got)
	}
}

// A workspace with neither repos nor identity gets no setup at all.
func TestGitSetupNothingToDo(t *testing.T) {
	g := newGitRig(t, gitsetup.Default())
	req := createReq("w1", "u1")
	req.Config.Settings = registry.Settings{}
	ws, err := g.orch.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gitsetup.StatusOf(ws.Metadata); ok {
		t.Errorf("metadata: got a git setup in %v, want none", ws.Metadata)
	}
	if n := len(g.git.requests()); n != 0 {
		t.Errorf("execs: got %d, want none", n)
	}
}

// The setup's time is bounded: the clone under way when it runs out and
// every later one fail with "timeout", the workspace runs on.
func TestGitSetupTimeout(t *testing.T) {
	g := newGitRig(t, gitsetup.Config{Timeout: 2 * time.Second, Workers: 1})
	req := createReq("w1", "u1")
	req.Config.Repos = []string{"https://h/a/slow.git", "https://h/a/next.git"}
	if _, err := g.orch.Create(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	st := g.setupOf("w1", 1)
	got := outcomes(st)
	if got[0].Reason != gitsetup.ReasonTimeout || got[1].Reason != gitsetup.ReasonTimeout || st.State != gitsetup.StateFailed {
		t.Errorf("got %s with %+v, want failed, both repos timed out", st.State, got)
	}
	if !strings.HasPrefix(st.Repos[1].Error, "not attempted") {
		t.Errorf("the repo after the timeout: got error %q, want not attempted", st.Repos[1].Error)
	}
}

// A restart during a setup supersedes it: the old setup stops writing, the
// new one runs after it, and only the new one finishes.
func TestGitSetupSupersededByRestart(t *testing.T) {
	ctx := context.Background()
	g := newGitRig(t, gitsetup.Default())
	req := createReq("w1", "u1")
	req.Config.Repos = []string{"https://h/a/slow.git", "https://h/a/web.git"}
	ws, err := g.orch.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	<-g.git.held // run 1 clones slow.git
	if err := g.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	close(g.git.gate)
	st := g.setupOf("w1", 2)
	if got := outcomes(st); got[0].State != gitsetup.RepoPresent || got[1].State != gitsetup.RepoCloned || st.State != gitsetup.StateDone {
		t.Errorf("run 2: got %s with %+v, want done: slow.git present (run 1 cloned it), web.git cloned", st.State, got)
	}
	// Run 1's clone of slow.git ended after the restart: it is told, and
	// run 1 stops there.
	want := []string{"git.setup.started", "git.repo.cloned", "git.setup.started", "git.repo.present", "git.repo.cloned", "git.setup.finished"}
	if d := cmp.Diff(want, gitEvents(g.rig, "w1")); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// A setup due when the scheduler stopped is done by the next one's Run.
func TestGitSetupResumedAtStart(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1")
	git := newFakeGit()
	r.agents["ws-1"].SetExec(git.exec)
	first, err := gitsetup.New(gitsetup.Default(), r.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := r.with(func(_ *orchestrator.Config, d *orchestrator.Deps) { d.GitSetup = first }) // never Run: the scheduler died
	req := createReq("w1", "u1")
	req.Config.Repos = []string{"https://h/a/api.git"}
	if _, err := o.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	next, err := gitsetup.New(gitsetup.Default(), r.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	runService(t, next, o)
	g := &gitRig{rig: r, orch: o, git: git}
	if st := g.setupOf("w1", 1); st.State != gitsetup.StateDone {
		t.Errorf("resumed setup: got %+v, want done", st)
	}
}

// With GitEnv (images that clone by themselves) the container gets the
// contract's GIT_* variables, credentials included, from the registry's
// credentials table, also after a move; without it, none.
func TestGitEnvSetting(t *testing.T) {
	const secret = "https://ada:s3cret-t0ken@git.example.com"
	settings := registry.Settings{GitBranch: "main", GitName: "Ada", GitEmail: "ada@example.com"}
	tests := []struct {
		name   string
		gitEnv bool
		move   bool // the workspace's server drains and it is restarted
		want   map[string]string
	}{
		{name: "default: none", want: map[string]string{}},
		{name: "default, after a move: none", move: true, want: map[string]string{}},
		{name: "GitEnv", gitEnv: true, want: map[string]string{"GIT_REPOS": "https://git.example.com/a/b.git", "GIT_CREDENTIALS": secret,
			"GIT_BRANCH": "main", "GIT_USER_NAME": "Ada", "GIT_USER_EMAIL": "ada@example.com"}},
		{name: "GitEnv, after a move", gitEnv: true, move: true, want: map[string]string{"GIT_REPOS": "https://git.example.com/a/b.git",
			"GIT_CREDENTIALS": secret, "GIT_BRANCH": "main", "GIT_USER_NAME": "Ada", "GIT_USER_EMAIL": "ada@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, 4, "ws-1", "ws-2")
			o := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.GitEnv = tt.gitEnv })
			creates := map[string]func() []wire.CreateContainerRequest{}
			for id, a := range r.agents {
				creates[id] = captureCreates(t, a)
			}
			req := createReq("w1", "u1")
			req.Config.Repos, req.Config.Settings, req.Config.GitCredentials = []string{"https://git.example.com/a/b.git"}, settings, secret
			ws, err := o.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.move {
				r.setState(ws.ServerID, "draining")
				if err := o.Restart(ctx, ws); err != nil {
					t.Fatal(err)
				}
				if ws, err = o.Get(ctx, "w1"); err != nil {
					t.Fatal(err)
				}
			}
			sent := creates[ws.ServerID]()
			if len(sent) != 1 {
				t.Fatalf("creates sent to %s: got %d, want 1", ws.ServerID, len(sent))
			}
			got := map[string]string{}
			for k, v := range sent[0].Env {
				if strings.HasPrefix(k, "GIT_") {
					got[k] = v
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("git environment of the container (-want +got):\n%s", d)
			}
			if stored, err := r.db.GetCredentials(ctx, "w1"); err != nil || stored.Git != secret {
				t.Errorf("stored credentials: got %q, %v; want them kept for later starts", stored.Git, err)
			}
			raw, _ := json.Marshal(ws)
			if strings.Contains(string(raw), "s3cret") {
				t.Errorf("the workspace row carries the credentials: %s", raw)
			}
		})
	}
}
