package orchestrator_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/agent/agenttest"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// execLog records the execs an agent runs and answers them with answer.
type execLog struct {
	mu   sync.Mutex
	reqs []wire.ExecRequest
}

func (l *execLog) install(a *agenttest.Agent, answer func(req wire.ExecRequest, stdout, stderr io.Writer) int) {
	a.SetExec(func(_ context.Context, _ wire.Container, req wire.ExecRequest, stdout, stderr io.Writer) (int, error) {
		l.mu.Lock()
		l.reqs = append(l.reqs, req)
		l.mu.Unlock()
		return answer(req, stdout, stderr), nil
	})
}

func (l *execLog) all() []wire.ExecRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]wire.ExecRequest(nil), l.reqs...)
}

// terminalRig is a rig with one running workspace w1 on ws-1.
func terminalRig(t *testing.T) (*rig, registry.Workspace) {
	t.Helper()
	r := newRig(t, 4, "ws-1")
	ws, err := r.orch.Create(context.Background(), createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	return r, ws
}

// readFor reads from rd until the output holds want, failing after a
// deadline.
func readFor(t *testing.T, rd io.Reader, want string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 1024)
		for !strings.Contains(b.String(), want) {
			n, err := rd.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.String()
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, want) {
			t.Fatalf("output %q ended without %q", s, want)
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no %q within 10s", want)
		return ""
	}
}

func TestOpenTerminal(t *testing.T) {
	env := map[string]string{"TERM": "xterm-256color", "LANG": "C.UTF-8"}
	tests := []struct {
		name       string
		req        orchestrator.TerminalRequest
		session    string // the tmux session
		shell      string
		rows, cols uint16
	}{
		{name: "session and zsh", req: orchestrator.TerminalRequest{Session: "s1", Shell: "zsh", Rows: 40, Cols: 120},
			session: "podex-s1", shell: "zsh", rows: 40, cols: 120},
		{name: "fish", req: orchestrator.TerminalRequest{Session: "s2", Shell: "fish", Rows: 30, Cols: 100},
			session: "podex-s2", shell: "fish", rows: 30, cols: 100},
		{name: "no session: the workspace's, default size", req: orchestrator.TerminalRequest{Shell: "bash"},
			session: "podex-w1", shell: "bash", rows: 24, cols: 80},
		{name: "unknown shell is bash", req: orchestrator.TerminalRequest{Session: "s3", Shell: "powershell", Rows: 10, Cols: 20},
			session: "podex-s3", shell: "bash", rows: 10, cols: 20},
		{name: "tmux's separators in the id", req: orchestrator.TerminalRequest{Session: "a.b:c d", Shell: "", Rows: 10, Cols: 20},
			session: "podex-a_b_c d", shell: "bash", rows: 10, cols: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r, ws := terminalRig(t)
			a := r.agents["ws-1"]
			var execs execLog
			execs.install(a, func(wire.ExecRequest, io.Writer, io.Writer) int { return 0 })
			before, _ := r.orch.Get(ctx, "w1")
			time.Sleep(2 * time.Millisecond) // the activity time must move

			tty, err := r.orch.OpenTerminal(ctx, ws, tt.req)
			if err != nil {
				t.Fatalf("OpenTerminal: %v", err)
			}
			defer tty.Close()
			if _, err := tty.Write([]byte("echo hi\r")); err != nil {
				t.Fatal(err)
			}
			readFor(t, tty, "echo hi\r")

			got := execs.all()
			if len(got) != 1 {
				t.Fatalf("execs: got %d, want 1 (the setup): %+v", len(got), got)
			}
			setup := got[0]
			wantArgs := []string{tt.session, tt.shell, itoa(tt.cols), itoa(tt.rows)}
			if len(setup.Cmd) < 4 || setup.Cmd[0] != "sh" || setup.Cmd[1] != "-c" || setup.Cmd[3] != "sh" {
				t.Fatalf("setup command: got %q, want sh -c SCRIPT sh ARGS…", setup.Cmd)
			}
			if d := cmp.Diff(wantArgs, setup.Cmd[4:]); d != "" {
				t.Errorf("setup arguments (-want +got):\n%s", d)
			}
			for _, part := range []string{`tmux has-session -t "=$1"`, `tmux new-session -d -s "$1" -x "$3" -y "$4" -c /home/dev "$shell" -l`,
				`tmux set-option -t "=$1:" mouse on`} {
				if !strings.Contains(setup.Cmd[2], part) {
					t.Errorf("setup script lacks %q:\n%s", part, setup.Cmd[2])
				}
			}
			if setup.User != "dev" || setup.WorkingDir != "/home/dev" {
				t.Errorf("setup runs as %q in %q, want dev in /home/dev", setup.User, setup.WorkingDir)
			}

			terms := a.Terminals()
			if len(terms) != 1 {
				t.Fatalf("terminals: got %d, want 1", len(terms))
			}
			want := wire.TTYRequest{Cmd: []string{"tmux", "attach-session", "-t", "=" + tt.session},
				User: "dev", WorkingDir: "/home/dev", Env: env, Rows: tt.rows, Cols: tt.cols}
			if d := cmp.Diff(want, terms[0].Req); d != "" {
				t.Errorf("TTY request (-want +got):\n%s", d)
			}
			if got := terms[0].Size(); got != (agenttest.TermSize{Rows: tt.rows, Cols: tt.cols}) {
				t.Errorf("initial size: got %+v, want %dx%d", got, tt.rows, tt.cols)
			}
			if err := tty.Resize(ctx, 50, 132); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-terms[0].Resized():
				if s != (agenttest.TermSize{Rows: 50, Cols: 132}) {
					t.Errorf("resize: got %+v, want 50x132", s)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no resize reached the terminal")
			}

			after, _ := r.orch.Get(ctx, "w1")
			if !after.LastActivity.After(before.LastActivity) {
				t.Errorf("last activity: got %v, want after %v", after.LastActivity, before.LastActivity)
			}
			if err := tty.Close(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the terminal hung up", terms[0].Closed)
		})
	}
}

// An image without tmux gets the plain shell the setup script names; the
// session ends with the shell.
func TestOpenTerminalWithoutTmux(t *testing.T) {
	ctx := context.Background()
	r, ws := terminalRig(t)
	a := r.agents["ws-1"]
	var execs execLog
	execs.install(a, func(_ wire.ExecRequest, stdout, _ io.Writer) int {
		_, _ = io.WriteString(stdout, "/usr/bin/zsh")
		return 3
	})
	a.SetTTY(func(_ context.Context, _ wire.Container, _ wire.TTYRequest, term *agenttest.Terminal) int {
		_, _ = io.WriteString(term, "$ ")
		return 0
	})
	tty, err := r.orch.OpenTerminal(ctx, ws, orchestrator.TerminalRequest{Session: "s1", Shell: "zsh"})
	if err != nil {
		t.Fatalf("OpenTerminal: %v", err)
	}
	defer tty.Close()
	out, err := io.ReadAll(tty)
	if err != nil || string(out) != "$ " {
		t.Errorf("output: got %q, %v; want %q, then the end", out, err, "$ ")
	}
	if code, exited := tty.ExitCode(); !exited || code != 0 {
		t.Errorf("exit: got %d, %v; want 0, true", code, exited)
	}
	if got := a.Terminals()[0].Req.Cmd; !cmp.Equal(got, []string{"/usr/bin/zsh", "-l"}) {
		t.Errorf("TTY command: got %q, want the plain login shell", got)
	}
}

func TestOpenTerminalRefused(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *rig, ws *registry.Workspace)
		want   error // a sentinel; nil: another error
		inErr  string
	}{
		{name: "not running", change: func(_ *rig, ws *registry.Workspace) { ws.Status = fleet.StatusStopped },
			want: orchestrator.ErrNotRunning},
		{name: "no container", change: func(_ *rig, ws *registry.Workspace) { ws.ContainerID = "" },
			want: orchestrator.ErrNoContainer},
		{name: "no server", change: func(_ *rig, ws *registry.Workspace) { ws.ServerID = "" },
			want: orchestrator.ErrNoContainer},
		{name: "unknown server", change: func(_ *rig, ws *registry.Workspace) { ws.ServerID = "ws-9" },
			want: orchestrator.ErrServerUnavailable},
		{name: "agent down", change: func(r *rig, _ *registry.Workspace) { r.agents["ws-1"].SetDown(true) },
			want: orchestrator.ErrServerUnavailable},
		{name: "the container stopped behind our back", change: func(r *rig, ws *registry.Workspace) {
			if err := r.agents["ws-1"].Exit(ws.ContainerID, 0); err != nil {
				r.t.Fatal(err)
			}
		}, want: orchestrator.ErrNotRunning},
		{name: "setup fails", change: func(r *rig, _ *registry.Workspace) {
			var execs execLog
			execs.install(r.agents["ws-1"], func(_ wire.ExecRequest, _, stderr io.Writer) int {
				_, _ = io.WriteString(stderr, "create window failed: fork failed\n")
				return 1
			})
		}, inErr: "create window failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ws := terminalRig(t)
			var execs execLog
			execs.install(r.agents["ws-1"], func(wire.ExecRequest, io.Writer, io.Writer) int { return 0 })
			tt.change(r, &ws)
			tty, err := r.orch.OpenTerminal(context.Background(), ws, orchestrator.TerminalRequest{Session: "s1"})
			if err == nil {
				tty.Close()
				t.Fatal("OpenTerminal: got a terminal, want an error")
			}
			for _, s := range []error{orchestrator.ErrNotRunning, orchestrator.ErrNoContainer, orchestrator.ErrServerUnavailable} {
				want := tt.want != nil && errors.Is(tt.want, s)
				if errors.Is(err, s) != want {
					t.Errorf("error %v: errors.Is(%v) = %v, want %v", err, s, !want, want)
				}
			}
			if tt.inErr != "" && !strings.Contains(err.Error(), tt.inErr) {
				t.Errorf("error %q: want it to carry %q", err, tt.inErr)
			}
			if n := len(r.agents["ws-1"].Terminals()); n != 0 {
				t.Errorf("terminals opened: %d, want 0", n)
			}
		})
	}
}

// The session ends when tmux does (the session was killed): Read ends
// with io.EOF.
func TestTerminalSessionEnds(t *testing.T) {
	r, ws := terminalRig(t)
	a := r.agents["ws-1"]
	var execs execLog
	execs.install(a, func(wire.ExecRequest, io.Writer, io.Writer) int { return 0 })
	a.SetTTY(func(ctx context.Context, _ wire.Container, _ wire.TTYRequest, term *agenttest.Terminal) int {
		buf := make([]byte, 64)
		n, _ := term.Read(buf)
		_, _ = term.Write(buf[:n])
		return 0 // [exited]
	})
	tty, err := r.orch.OpenTerminal(context.Background(), ws, orchestrator.TerminalRequest{Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if _, err := tty.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(tty)
	if err != nil || string(out) != "x" {
		t.Errorf("output: got %q, %v; want %q then io.EOF", out, err, "x")
	}
}

func TestKillTerminalSession(t *testing.T) {
	tests := []struct {
		name       string
		exit       int
		change     func(r *rig, ws *registry.Workspace)
		wantKilled bool
		wantErr    error
		wantExecs  int
	}{
		{name: "killed", exit: 0, wantKilled: true, wantExecs: 1},
		{name: "no such session", exit: 1, wantExecs: 1},
		{name: "not running", change: func(_ *rig, ws *registry.Workspace) { ws.Status = fleet.StatusStopped }},
		{name: "no container", change: func(_ *rig, ws *registry.Workspace) { ws.ContainerID = "" }},
		{name: "no server", change: func(_ *rig, ws *registry.Workspace) { ws.ServerID = "" },
			wantErr: orchestrator.ErrServerUnavailable},
		{name: "agent down", change: func(r *rig, _ *registry.Workspace) { r.agents["ws-1"].SetDown(true) },
			wantErr: orchestrator.ErrServerUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ws := terminalRig(t)
			var execs execLog
			execs.install(r.agents["ws-1"], func(wire.ExecRequest, io.Writer, io.Writer) int { return tt.exit })
			if tt.change != nil {
				tt.change(r, &ws)
			}
			killed, err := r.orch.KillTerminalSession(context.Background(), ws, "s1")
			if killed != tt.wantKilled || !matchError(err, tt.wantErr) {
				t.Errorf("got %v, %v; want %v, %v", killed, err, tt.wantKilled, tt.wantErr)
			}
			got := execs.all()
			if len(got) != tt.wantExecs {
				t.Fatalf("execs: got %d, want %d", len(got), tt.wantExecs)
			}
			if len(got) == 1 {
				want := []string{"sh", "-c", `tmux kill-session -t "=$1"`, "sh", "podex-s1"}
				if d := cmp.Diff(want, got[0].Cmd); d != "" || got[0].User != "dev" {
					t.Errorf("kill command as %q (-want +got):\n%s", got[0].User, d)
				}
			}
		})
	}
}

func TestTerminalSession(t *testing.T) {
	tests := []struct{ workspace, session, want string }{
		{"w1", "s1", "podex-s1"},
		{"w1", "", "podex-w1"},
		{"w1", "a.b:c", "podex-a_b_c"},
		{"w1", "tab\there\x7f", "podex-tab_here_"},
		{"w1", "ünï cødé", "podex-ünï cødé"},
	}
	for _, tt := range tests {
		if got := orchestrator.TerminalSession(tt.workspace, tt.session); got != tt.want {
			t.Errorf("TerminalSession(%q, %q): got %q, want %q", tt.workspace, tt.session, got, tt.want)
		}
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
