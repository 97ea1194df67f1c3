package docker

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
)

// TTY is a process running on a terminal in a container, as ExecTTY (or the
// in-memory fake) starts it. Read returns the terminal's output as the
// daemon delivers it, and io.EOF once the process has exited and its output
// is drained; Write sends input. One goroutine may Read while another
// Writes; Resize and Close may be called from any goroutine.
type TTY interface {
	io.ReadWriter
	// Resize sets the terminal's size (both > 0).
	Resize(ctx context.Context, rows, cols uint16) error
	// Wait returns the exit code once the process has exited; call it after
	// Read returned io.EOF.
	Wait(ctx context.Context) (exitCode int, err error)
	// Close ends the stream, which unblocks Read and Write. A process still
	// running is hung up (SIGHUP), as a terminal that goes away does: a
	// shell exits, a tmux client detaches; one that ignores SIGHUP keeps
	// running. Close is idempotent.
	Close() error
}

// ttyDetachKeys replaces the daemon's default detach sequence for TTY
// execs. Docker cannot turn detaching off, and its proxy holds back every
// input byte that could start the sequence until the next one arrives: with
// the default (ctrl-p, ctrl-q) a shell's ctrl-p would lag one keystroke.
// ctrl-\ (SIGQUIT) is the control key terminals least depend on, and four
// of them in a row are not typed by accident.
const ttyDetachKeys = `ctrl-\,ctrl-\,ctrl-\,ctrl-\`

// ttyHangupTimeout bounds the daemon calls Close makes to hang up a process
// still running.
const ttyHangupTimeout = 5 * time.Second

// ExecTTY starts req.Cmd on a new terminal in a running berth container,
// with stdin attached, and returns the open stream. When req has a size the
// terminal starts with it (on daemons older than API 1.42, which ignore the
// initial size, it is resized right after the start). A stopped container
// gives ErrConflict. ctx bounds the start only: the stream lives until Close
// or the process's exit.
func (c *Client) ExecTTY(ctx context.Context, id string, req wire.TTYRequest) (TTY, error) {
	if err := ValidateTTY(req); err != nil {
		return nil, err
	}
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return nil, err
	}
	if ctr.State == nil || !ctr.State.Running {
		return nil, fmt.Errorf("%w: container %s is not running", ErrConflict, id)
	}
	var size *[2]uint
	if req.Rows > 0 {
		size = &[2]uint{uint(req.Rows), uint(req.Cols)}
	}
	env, sbx := markExec(ctr, req.User, envList(req.Env))
	created, err := c.api.ContainerExecCreate(ctx, ctr.ID, container.ExecOptions{
		User:         req.User,
		WorkingDir:   req.WorkingDir,
		Env:          env,
		Cmd:          req.Cmd,
		Tty:          true,
		ConsoleSize:  size,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		DetachKeys:   ttyDetachKeys,
	})
	if err != nil {
		return nil, wrapErr(err, "create tty exec in %s", id)
	}
	att, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true, ConsoleSize: size})
	if err != nil {
		return nil, wrapErr(err, "start tty exec in %s", id)
	}
	t := &ttyExec{c: c, containerID: ctr.ID, execID: created.ID, att: att, sandbox: sbx}
	if size != nil {
		if err := t.Resize(ctx, req.Rows, req.Cols); err != nil {
			// The process may have exited already; its output says why.
			c.log.Debug("initial tty resize failed", "exec", created.ID, "error", err)
		}
	}
	return t, nil
}

// ttyExec is the adapter's TTY: the hijacked connection of the exec's
// start, which carries the terminal's raw bytes both ways.
type ttyExec struct {
	c           *Client
	containerID string
	execID      string
	att         types.HijackedResponse
	sandbox     *sandboxExec // under runsc: hangup signals inside the sandbox

	closeOnce sync.Once
}

func (t *ttyExec) Read(p []byte) (int, error)  { return t.att.Reader.Read(p) }
func (t *ttyExec) Write(p []byte) (int, error) { return t.att.Conn.Write(p) }

func (t *ttyExec) Resize(ctx context.Context, rows, cols uint16) error {
	if err := ValidateTTYSize(rows, cols); err != nil {
		return err
	}
	err := t.c.api.ContainerExecResize(ctx, t.execID, container.ResizeOptions{Height: uint(rows), Width: uint(cols)})
	return wrapErr(err, "resize tty exec %s", t.execID)
}

func (t *ttyExec) Wait(ctx context.Context) (int, error) { return t.c.waitExecExit(ctx, t.execID) }

func (t *ttyExec) Close() error {
	t.closeOnce.Do(func() {
		t.att.Close()
		t.hangup()
	})
	return nil
}

// hangup sends SIGHUP to the exec's process if it still runs: closing the
// attach connection does not end a TTY exec (the daemon keeps its terminal
// open), so without it every closed terminal would leave a shell behind.
// Like killExec it needs the agent beside its dockerd, and signals only a
// process of the container's cgroup.
func (t *ttyExec) hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), ttyHangupTimeout)
	defer cancel()
	ins, err := t.c.api.ContainerExecInspect(ctx, t.execID)
	if err != nil {
		t.c.log.Debug("tty hangup: inspect exec", "exec", t.execID, "error", err)
		return
	}
	if ins.Running && t.sandbox != nil {
		if err := t.c.signalInSandbox(ctx, t.sandbox, "HUP"); err != nil {
			t.c.log.Debug("tty hangup in the sandbox", "exec", t.execID, "error", err)
		}
		return
	}
	if !ins.Running || ins.Pid <= 0 || !inCgroupOf(t.containerID)(ins.Pid) {
		return
	}
	if err := syscall.Kill(ins.Pid, syscall.SIGHUP); err != nil {
		t.c.log.Debug("tty hangup", "exec", t.execID, "pid", ins.Pid, "error", err)
	}
}

// Address returns the IP address of a running berth container on its
// network (the default bridge's, or the first of its networks by name),
// which the agent's proxy dials; the container's ports are never published.
// See AddressOf.
func (c *Client) Address(ctx context.Context, id string) (string, error) {
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return "", err
	}
	return AddressOf(toWireContainer(ctr, time.Now()))
}

// AddressOf is where the proxy dials a container it has inspected: its
// IPAddress; ErrConflict when it is not running or runs without a network
// address (network mode none).
func AddressOf(c wire.Container) (string, error) {
	if c.State != "running" {
		return "", fmt.Errorf("%w: container %s is not running", ErrConflict, c.ID)
	}
	if c.IPAddress == "" {
		return "", fmt.Errorf("%w: container %s has no network address", ErrConflict, c.ID)
	}
	return c.IPAddress, nil
}
