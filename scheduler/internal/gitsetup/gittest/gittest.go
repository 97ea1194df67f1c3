// Package gittest serves git repositories over smart HTTP for tests: the
// machine's own `git http-backend` run through net/http/cgi, behind HTTP
// basic authentication, as a private repository on a git host is. It
// records what the clients sent, so that a test can tell whether the right
// credentials arrived and whether any arrived in a URL.
package gittest

import (
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Server is a git server of a test. Safe for concurrent use.
type Server struct {
	// Root is the directory of the bare repositories (<name>.git).
	Root string
	// Port is the TCP port it listens on.
	Port int

	user, pass string
	backend    *cgi.Handler
	srv        *http.Server

	mu        sync.Mutex
	authed    int           // requests with the right credentials
	refused   int           // requests without them (401)
	userinfo  int           // requests whose URL carried user info
	hold      chan struct{} // while not nil, fetches wait until it is closed
	holding   chan struct{} // receives one value per fetch held
	holdMatch string        // only fetches of paths containing this are held
}

// Git is the machine's git, or the test is skipped.
func Git(t testing.TB) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git on this machine")
	}
	return git
}

// Start serves an empty root on addr ("127.0.0.1:0", or "0.0.0.0:0" to be
// reached from containers) until the test ends. Every request must carry
// user and pass in basic authentication.
func Start(t testing.TB, addr, user, pass string) *Server {
	t.Helper()
	git := Git(t)
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Fatalf("gittest: git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("gittest: no git-http-backend: %v", err)
	}
	s := &Server{Root: t.TempDir(), user: user, pass: pass}
	s.backend = &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1"},
		Stderr: io.Discard}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	s.srv = &http.Server{Handler: s}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() {
		s.Release()
		_ = s.srv.Close()
	})
	return s
}

// ServeHTTP checks the credentials, then hands the request to git.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	good := ok && subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.pass)) == 1
	s.mu.Lock()
	if r.URL.User != nil {
		s.userinfo++
	}
	if !good {
		s.refused++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	s.authed++
	hold, holding := s.hold, s.holding
	if r.Method != http.MethodPost || !strings.Contains(r.URL.Path, s.holdMatch) {
		hold = nil
	}
	s.mu.Unlock()
	if hold != nil {
		holding <- struct{}{}
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	s.backend.ServeHTTP(w, r)
}

// Counts are what the server saw: requests with the right credentials,
// refused ones, and ones whose URL carried user info (none should).
func (s *Server) Counts() (authed, refused, userinfo int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authed, s.refused, s.userinfo
}

// Hold makes the fetches (git-upload-pack POSTs, after the credentials
// were accepted) of repositories whose path contains match wait until
// Release: a clone is then in flight, its credentials in use, for as long
// as the test needs. Each held fetch sends one value on the returned
// channel.
func (s *Server) Hold(match string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold, s.holding, s.holdMatch = make(chan struct{}), make(chan struct{}, 16), match
	return s.holding
}

// Release lets held fetches go on, and later ones pass. Idempotent.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

// AddRepo makes the bare repository <name>.git with one commit on each of
// branches (the first is its default branch); each commit adds README with
// "<name> on <branch>\n".
func (s *Server) AddRepo(t testing.TB, name string, branches ...string) {
	t.Helper()
	if len(branches) == 0 {
		branches = []string{"main"}
	}
	git := Git(t)
	work := t.TempDir()
	bare := filepath.Join(s.Root, name+".git")
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=gittest", "GIT_AUTHOR_EMAIL=gittest@example.com",
			"GIT_COMMITTER_NAME=gittest", "GIT_COMMITTER_EMAIL=gittest@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+work)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gittest: git %v: %v\n%s", args, err, out)
		}
	}
	run(s.Root, "init", "--quiet", "--bare", "--initial-branch="+branches[0], bare)
	src := filepath.Join(work, "src")
	run(work, "init", "--quiet", "--initial-branch="+branches[0], src)
	for i, b := range branches {
		if i > 0 {
			run(src, "checkout", "--quiet", "-b", b, branches[0])
		}
		if err := os.WriteFile(filepath.Join(src, "README"), []byte(name+" on "+b+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		run(src, "add", "README")
		run(src, "commit", "--quiet", "-m", "README on "+b)
		run(src, "push", "--quiet", bare, b)
	}
}
