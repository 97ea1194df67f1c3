package gitsetup

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/gitsetup/gittest"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// The requests carry the credentials only as their input: never in the
// command line or the environment.
func TestRequestsKeepSecretsOnTheirInput(t *testing.T) {
	const secret = "ghp_S3cretT0ken"
	p := NewPlan([]string{"https://github.com/acme/api.git"}, registry.Settings{GitName: "Ada", GitEmail: "ada@example.com",
		GitBranch: "dev"}, "ada:"+secret)
	for name, req := range map[string]wire.ExecRequest{
		"configure": p.ConfigureRequest(90 * time.Second), "clone": p.CloneRequest(p.Repos[0], 1500*time.Millisecond),
	} {
		t.Run(name, func(t *testing.T) {
			if req.User != "dev" || req.WorkingDir != Home || req.Cmd[0] != "bash" || req.Cmd[1] != "-c" {
				t.Errorf("got user %q, dir %q, cmd %q…; want bash -c as dev in %s", req.User, req.WorkingDir, req.Cmd[:2], Home)
			}
			if strings.Contains(strings.Join(req.Cmd, "\x00"), secret) {
				t.Errorf("the command line holds the secret: %q", req.Cmd)
			}
			for k, v := range req.Env {
				if strings.Contains(k+"="+v, secret) {
					t.Errorf("the environment holds the secret: %s", k)
				}
			}
			if want := "https://ada:" + secret + "@github.com\n"; string(req.Stdin) != want {
				t.Errorf("input: got %q, want the store file %q", req.Stdin, want)
			}
			if req.Env["GIT_TERMINAL_PROMPT"] != "0" || req.Env["LC_ALL"] != "C" || req.Env["HOME"] != Home {
				t.Errorf("environment: got %v, want git non-interactive, in the C locale, HOME=%s", req.Env, Home)
			}
			if want := map[string]int{"configure": 90, "clone": 2}[name]; req.TimeoutSeconds != want {
				t.Errorf("timeout: got %d s, want %d", req.TimeoutSeconds, want)
			}
		})
	}
	clone := p.CloneRequest(p.Repos[0], time.Minute)
	if d := cmp.Diff([]string{"https://github.com/acme/api.git", Home + "/api", "dev", StorePath, "1"}, clone.Cmd[4:]); d != "" {
		t.Errorf("clone arguments (-want +got):\n%s", d)
	}
}

// localRun runs an exec request with this machine's bash and git, in home
// instead of the container's /home/dev.
type localRun struct {
	t     *testing.T
	home  string
	store string
}

type outcome struct {
	stdout, stderr string
	code           int
}

func (l localRun) run(req wire.ExecRequest) outcome {
	l.t.Helper()
	cmd := exec.Command(req.Cmd[0], req.Cmd[1:]...)
	cmd.Dir = l.home
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1"}
	for k, v := range req.Env {
		if k == "HOME" {
			v = l.home
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(req.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		l.t.Fatalf("run %v: %v", req.Cmd[3], err)
	}
	return outcome{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// plan is NewPlan with the repos' directories in home.
func (l localRun) plan(repos []string, s registry.Settings, creds string) Plan {
	p := NewPlan(repos, s, creds)
	for i := range p.Repos {
		p.Repos[i].Dir = filepath.Join(l.home, p.Repos[i].Name)
	}
	return p
}

func (l localRun) git(dir string, args ...string) string {
	l.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + l.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (l localRun) leftovers() []string {
	m, _ := filepath.Glob(filepath.Join(l.home, ".berth-clone-*"))
	return m
}

// The scripts against a real git server that wants credentials: identity
// and store, a clone on the branch, its second run, and every failure the
// metadata tells apart.
func TestScriptsWithRealGit(t *testing.T) {
	gittest.Git(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	const pass = "p@ss:w/rd+%Z"
	srv := gittest.Start(t, "127.0.0.1:0", "ada", pass)
	srv.AddRepo(t, "app", "main", "feature-x")
	base := fmt.Sprintf("http://127.0.0.1:%d", srv.Port)
	home := t.TempDir()
	l := localRun{t: t, home: home, store: filepath.Join(home, ".config", "berth", "git-credentials")}
	repo := base + "/app.git"
	identity := registry.Settings{GitName: "Ada Lovelace", GitEmail: "ada@example.com", GitBranch: "feature-x"}
	good := l.plan([]string{repo}, identity, "ada:"+pass)

	t.Run("configure", func(t *testing.T) {
		for range 2 { // twice: the helper is named once
			if o := l.run(good.configure(time.Minute, l.store)); o.code != 0 {
				t.Fatalf("configure: exit %d: %s", o.code, o.stderr)
			}
		}
		if got := l.git(home, "config", "--global", "user.name") + " <" + l.git(home, "config", "--global", "user.email") + ">"; got != "Ada Lovelace <ada@example.com>" {
			t.Errorf("identity: got %q", got)
		}
		if got := l.git(home, "config", "--global", "--get-all", "credential.helper"); got != "store --file="+l.store {
			t.Errorf("credential helpers: got %q, want the store once", got)
		}
		checkStore(t, l.store, good.store)
	})
	t.Run("clone on the branch", func(t *testing.T) {
		o := l.run(good.clone(good.Repos[0], time.Minute, l.store))
		if o.code != 0 || lastLine([]byte(o.stdout)) != outCloned {
			t.Fatalf("clone: exit %d, stdout %q, stderr %q; want cloned", o.code, o.stdout, o.stderr)
		}
		dir := good.Repos[0].Dir
		if got := l.git(dir, "rev-parse", "--abbrev-ref", "HEAD"); got != "feature-x" {
			t.Errorf("branch: got %q, want feature-x", got)
		}
		if raw, _ := os.ReadFile(filepath.Join(dir, "README")); string(raw) != "app on feature-x\n" {
			t.Errorf("README: got %q", raw)
		}
		if got := l.git(dir, "remote", "get-url", "origin"); got != repo {
			t.Errorf("origin: got %q, want %q (no credentials in it)", got, repo)
		}
		if left := l.leftovers(); len(left) != 0 {
			t.Errorf("leftovers: %v", left)
		}
		checkStore(t, l.store, good.store)
		l.git(dir, "fetch", "--quiet") // later git work finds the credentials in the store
		if authed, _, userinfo := srv.Counts(); authed == 0 || userinfo != 0 {
			t.Errorf("server saw %d authenticated requests and %d with user info in the URL; want some and none", authed, userinfo)
		}
	})
	t.Run("present", func(t *testing.T) {
		if o := l.run(good.clone(good.Repos[0], time.Minute, l.store)); o.code != 0 || lastLine([]byte(o.stdout)) != outPresent {
			t.Errorf("second clone: exit %d, stdout %q; want present", o.code, o.stdout)
		}
	})

	closed := func() string { // a port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name     string
		repo     string
		settings registry.Settings
		creds    string
		prepare  func(dir string)
		want     Reason // "" = cloned
	}{
		{name: "wrong password", repo: repo, creds: "ada:wrong", want: ReasonBadCredentials},
		{name: "wrong user", repo: repo, creds: "bob:" + pass, want: ReasonBadCredentials},
		{name: "no credentials", repo: repo, want: ReasonBadCredentials},
		{name: "no such branch", repo: repo, creds: "ada:" + pass, settings: registry.Settings{GitBranch: "nope"}, want: ReasonBranchNotFound},
		{name: "no such repository", repo: base + "/nope.git", creds: "ada:" + pass, want: ReasonRepoNotFound},
		{name: "unreachable", repo: "http://" + closed + "/app.git", creds: "ada:" + pass, want: ReasonUnreachable},
		{name: "directory not empty", repo: repo, creds: "ada:" + pass, want: ReasonDirNotEmpty, prepare: func(dir string) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "empty directory, leftovers of an interrupted clone", repo: repo, creds: "ada:" + pass, prepare: func(dir string) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(home, ".berth-clone-"+filepath.Base(dir)+".abc123", "repo", ".git"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "default branch", repo: repo, creds: "ada:" + pass},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := l.plan([]string{tt.repo}, tt.settings, tt.creds)
			e := p.Repos[0]
			e.Dir = filepath.Join(home, fmt.Sprintf("case%d", i))
			if tt.prepare != nil {
				tt.prepare(e.Dir)
			}
			o := l.run(p.clone(e, time.Minute, l.store))
			got := Reason("")
			switch {
			case o.code == exitDirNotEmpty:
				got = ReasonDirNotEmpty
			case o.code != 0:
				got = Classify(o.stderr)
			}
			if got != tt.want {
				t.Fatalf("got exit %d (%s), stderr %q; want %q", o.code, got, o.stderr, tt.want)
			}
			if tt.want == "" {
				if lastLine([]byte(o.stdout)) != outCloned {
					t.Errorf("stdout: got %q, want cloned", o.stdout)
				}
				want := tt.settings.GitBranch
				if want == "" {
					want = "main"
				}
				if b := l.git(e.Dir, "rev-parse", "--abbrev-ref", "HEAD"); b != want {
					t.Errorf("branch: got %s, want %s", b, want)
				}
			} else if tt.prepare == nil {
				if _, err := os.Stat(e.Dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed clone left %s (%v)", e.Dir, err)
				}
			}
			if left := l.leftovers(); len(left) != 0 {
				t.Errorf("leftovers: %v", left)
			}
			if p.store != nil {
				checkStore(t, l.store, p.store) // git erased what the server refused; the script put it back
			}
		})
	}
}

func checkStore(t *testing.T, path string, want []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("store file: %v", err)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("store file: got %q, want %q", raw, want)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, mode)
		}
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Errorf("temporary store files left: %v", m)
	}
}
