package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// The terminal (contract §3.21): a tmux session per terminal session id,
// created detached on first use and attached through a TTY exec, so that a
// disconnect only detaches the client and the shell lives on until the
// session is killed or the container stops.

// TerminalRequest opens a terminal.
type TerminalRequest struct {
	Session string // the session id; "" = the workspace's own session
	Shell   string // bash, zsh or fish; anything else is bash
	Rows    uint16 // initial size; 0 = DefaultTerminalRows × DefaultTerminalCols
	Cols    uint16
}

// The initial size of a terminal whose request names none.
const (
	DefaultTerminalRows = 24
	DefaultTerminalCols = 80
)

const (
	terminalUser = "dev"
	terminalHome = "/home/dev"
	// terminalSetupTimeout bounds the command that ensures the session.
	terminalSetupTimeout = 15 * time.Second
	// exitNoTmux is the setup script's exit code when the image has no
	// tmux (its `exit 3`); its stdout then names the shell to run instead.
	exitNoTmux = 3
)

// terminalEnv is the environment of the terminal's processes: the tmux
// client (TERM decides what it draws with, LANG that it speaks UTF-8) and,
// when the setup command starts the tmux server, the shells.
var terminalEnv = map[string]string{"TERM": "xterm-256color", "LANG": "C.UTF-8"}

// terminalShells are the shells a terminal may ask for.
var terminalShells = map[string]bool{"bash": true, "zsh": true, "fish": true}

// TerminalShell is the shell a terminal runs for the requested name:
// bash, zsh or fish; anything else is bash.
func TerminalShell(name string) string {
	if terminalShells[name] {
		return name
	}
	return "bash"
}

// TerminalSession is the tmux session name of a terminal session id:
// podex-<session>, or podex-<workspace id> without one. tmux itself turns
// ':' and '.' into '_' (they separate window and pane in a target) and
// escapes unprintable bytes; the name is made the way tmux would store it,
// so that `-t =name` finds the session again.
func TerminalSession(workspaceID, session string) string {
	if session == "" {
		session = workspaceID
	}
	var b strings.Builder
	b.WriteString("podex-")
	for _, r := range session {
		if r == ':' || r == '.' || r < 0x20 || r == 0x7f {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// terminalSetupScript ensures the tmux session $1 with shell $2 exists,
// $3 × $4 (columns × rows) being its first window's size. The values are
// the script's arguments, never part of its text, so no quoting can go
// wrong. It exits 0 when the session is there (created now, by an earlier
// terminal or by a concurrent one), exitNoTmux with the shell's path on
// stdout when there is no tmux, and otherwise with tmux's failure.
//
// A home without any zsh startup file gets an empty ~/.zshrc before zsh
// first starts there (what the wizard's "0" does): otherwise zsh greets the
// terminal with its interactive new-user wizard instead of a prompt.
//
// A target of the form =NAME matches the session NAME exactly (not as a
// prefix or pattern); set-option takes a pane target, hence =NAME: there.
// The shell falls back to bash, then sh, when the image lacks the one
// asked for. It runs as a login shell in /home/dev; the session gets mouse
// mode when it is created (a user who turned it off keeps it off).
const terminalSetupScript = `shell=$(command -v "$2" || command -v bash || command -v sh) || exit 1
command -v tmux >/dev/null 2>&1 || { printf '%s' "$shell"; exit 3; }
tmux has-session -t "=$1" 2>/dev/null && exit 0
if [ "$2" = zsh ] && ! [ -e ~/.zshrc ] && ! [ -e ~/.zshenv ] && ! [ -e ~/.zprofile ] && ! [ -e ~/.zlogin ]; then
	echo '# Created by the berth terminal: without any zsh startup file, zsh runs its new-user wizard.' >~/.zshrc
fi
if tmux new-session -d -s "$1" -x "$3" -y "$4" -c /home/dev "$shell" -l; then
	tmux set-option -t "=$1:" mouse on
	exit 0
fi
tmux has-session -t "=$1"`

// terminalKillScript kills the tmux session $1; it fails when there is
// none (or no tmux).
const terminalKillScript = `tmux kill-session -t "=$1"`

// OpenTerminal opens a terminal on the workspace: it ensures the tmux
// session of req (one Exec as dev), then attaches to it through a TTY exec
// as dev in /home/dev with TERM=xterm-256color and LANG=C.UTF-8, at the
// request's size. An image without tmux gets a plain login shell instead,
// which ends with the stream. The terminal lives as long as ctx (and until
// Close or the session's end); the caller closes it.
//
// Errors: ErrNoContainer, ErrNotRunning, ErrServerUnavailable (no such
// server, or its agent does not answer); anything else is a failure to
// start the session. Opening records activity on the workspace.
func (l *Lifecycle) OpenTerminal(ctx context.Context, ws registry.Workspace, req TerminalRequest) (*agentclient.TTY, error) {
	if err := CheckAppTarget(ws); err != nil {
		return nil, err
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return nil, err
	}
	rows, cols := req.Rows, req.Cols
	if rows == 0 || cols == 0 {
		rows, cols = DefaultTerminalRows, DefaultTerminalCols
	}
	name, shell := TerminalSession(ws.ID, req.Session), TerminalShell(req.Shell)
	cmd, err := l.ensureTerminalSession(cctx, client, ws, name, shell, rows, cols)
	if err != nil {
		return nil, err
	}
	tty, err := client.TTY(cctx, ws.ContainerID, wire.TTYRequest{
		Cmd: cmd, User: terminalUser, WorkingDir: terminalHome, Env: terminalEnv, Rows: rows, Cols: cols,
	})
	if err != nil {
		return nil, terminalError(err)
	}
	_ = l.touch(ctx, ws.ID)
	return tty, nil
}

// ensureTerminalSession runs the setup script and returns the command the
// TTY runs: the tmux client attached to the session, or the plain shell
// when the image has no tmux.
func (l *Lifecycle) ensureTerminalSession(ctx context.Context, client *agentclient.Client, ws registry.Workspace, name, shell string, rows, cols uint16) ([]string, error) {
	res, err := client.Exec(ctx, ws.ContainerID, terminalExec(terminalSetupScript,
		name, shell, strconv.Itoa(int(cols)), strconv.Itoa(int(rows))))
	switch {
	case err != nil:
		return nil, terminalError(err)
	case res.TimedOut:
		return nil, fmt.Errorf("tmux session %s: setup timed out after %s", name, terminalSetupTimeout)
	case res.ExitCode == exitNoTmux && len(res.Stdout) > 0:
		path := string(res.Stdout)
		l.log.Warn("no tmux in the workspace image; terminal without persistence", "workspace_id", ws.ID, "shell", path)
		return []string{path, "-l"}, nil
	case res.ExitCode != 0:
		return nil, fmt.Errorf("tmux session %s: setup exited %d: %s", name, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return []string{"tmux", "attach-session", "-t", "=" + name}, nil
}

// KillTerminalSession kills the tmux session of a terminal session id.
// killed is false when there was no such session (or the workspace is not
// running, which leaves none). Errors: ErrServerUnavailable when the
// workspace has no server or its agent does not answer; any other error
// means the command could not run.
func (l *Lifecycle) KillTerminalSession(ctx context.Context, ws registry.Workspace, session string) (killed bool, err error) {
	if ws.ServerID == "" {
		return false, ErrServerUnavailable
	}
	if ws.ContainerID == "" || ws.Status != fleet.StatusRunning {
		return false, nil // no running container: no tmux server, no session
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return false, err
	}
	res, err := client.Exec(cctx, ws.ContainerID, terminalExec(terminalKillScript, TerminalSession(ws.ID, session)))
	if err != nil {
		return false, terminalError(err)
	}
	return res.ExitCode == 0 && !res.TimedOut, nil
}

// terminalExec runs script with args ($1, $2, …) under sh as dev in
// /home/dev.
func terminalExec(script string, args ...string) wire.ExecRequest {
	return wire.ExecRequest{
		Cmd:  append([]string{"sh", "-c", script, "sh"}, args...),
		User: terminalUser, WorkingDir: terminalHome, Env: terminalEnv,
		TimeoutSeconds: int(terminalSetupTimeout / time.Second),
	}
}

// terminalError classifies an agent failure of a terminal's exec or TTY.
// A stopped container is a conflict for an exec and not_running for a TTY;
// a stale epoch (also a conflict) is passed on as it is.
func terminalError(err error) error {
	stopped := errors.Is(err, agentclient.ErrNotRunning) ||
		errors.Is(err, agentclient.ErrConflict) && !errors.Is(err, agentclient.ErrStaleEpoch)
	if stopped {
		return fmt.Errorf("%w: %w", ErrNotRunning, err)
	}
	return agentError(err)
}
