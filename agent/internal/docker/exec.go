package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// ExecTimeoutExitCode is the exit code Exec reports for a command it killed
// because its timeout passed or its context ended, the code timeout(1) uses.
const ExecTimeoutExitCode = 124

// execDrainGrace bounds how long Exec waits, after killing a timed-out
// process tree, for the daemon to close the output stream before closing it
// itself (a process that escaped the tree may still hold it open).
const execDrainGrace = 5 * time.Second

// Exec runs req.Cmd in a running berth container and returns its exit code.
// Output is demultiplexed and written to stdout and stderr as it arrives
// (either may be nil to discard it); the writers are used by one goroutine
// at a time and never after Exec returns.
//
// stdin, when not nil, is copied to the process as it is read (32 KiB at a
// time, never held whole) and the process's input is closed at its end;
// req.Stdin is the same for callers that hold the input in memory (giving
// both is ErrBadRequest). When reading stdin fails before its end, the
// process is killed and Exec returns ErrBadRequest: a process never sees
// a cut input as complete. When the process stops reading (it exited, or
// closed its input), the copy ends quietly. Exec returns once a Read of
// stdin in progress has returned.
//
// When req.TimeoutSeconds (> 0) passes, or ctx ends, the exec's process and
// all its descendants are killed with SIGKILL (found through the exec's PID,
// which is in the daemon's PID namespace, i.e. the agent's) and Exec returns
// ExecTimeoutExitCode with timedOut set: with a nil error on timeout, with
// the context's error on cancellation. A stopped container gives
// ErrConflict.
func (c *Client) Exec(ctx context.Context, id string, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (exitCode int, timedOut bool, err error) {
	if err := ValidateExec(req); err != nil {
		return 0, false, err
	}
	stdin, err = ExecInput(req, stdin)
	if err != nil {
		return 0, false, err
	}
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return 0, false, err
	}
	if ctr.State == nil || !ctr.State.Running {
		return 0, false, fmt.Errorf("%w: container %s is not running", ErrConflict, id)
	}
	env, sbx := markExec(ctr, req.User, envList(req.Env))
	created, err := c.api.ContainerExecCreate(ctx, ctr.ID, container.ExecOptions{
		User:         req.User,
		WorkingDir:   req.WorkingDir,
		Env:          env,
		Cmd:          req.Cmd,
		AttachStdin:  stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return 0, false, wrapErr(err, "create exec in %s", id)
	}
	if sbx != nil {
		c.sandboxExecs.Store(created.ID, sbx)
		defer c.sandboxExecs.Delete(created.ID)
	}
	att, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, false, wrapErr(err, "start exec in %s", id)
	}
	var wg sync.WaitGroup
	defer wg.Wait()   // runs last: no goroutine outlives Exec
	defer att.Close() // unblocks them

	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	copyDone := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := stdcopy.StdCopy(stdout, stderr, att.Reader)
		copyDone <- err
	}()
	stdinFailed := make(chan error, 1)
	if stdin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readErr, err := copyInput(att, stdin)
			switch {
			case readErr != nil:
				stdinFailed <- readErr
			case err != nil:
				c.log.Debug("exec stdin not fully written", "exec", created.ID, "error", err)
			}
		}()
	}

	var timeout <-chan time.Time
	if req.TimeoutSeconds > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutSeconds) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-copyDone:
		if err != nil {
			// The caller's writer or the connection failed: nobody reads
			// the output any more, so do not leave the process running.
			if kerr := c.killExec(ctx, ctr.ID, created.ID); kerr != nil {
				c.log.Warn("kill exec after output failure", "exec", created.ID, "error", kerr)
			}
			return 0, false, fmt.Errorf("%w: exec output of %s: %w", ErrDocker, id, err)
		}
		code, err := c.waitExecExit(ctx, created.ID)
		return code, false, err
	case err := <-stdinFailed:
		kerr := c.killExec(ctx, ctr.ID, created.ID)
		_ = drainExec(copyDone, att.Close)
		if kerr != nil {
			c.log.Warn("kill exec after its input broke off", "exec", created.ID, "error", kerr)
		}
		return 0, false, fmt.Errorf("%w: exec input of %s broke off: %w", ErrBadRequest, id, err)
	case <-timeout:
		kerr := c.killExec(ctx, ctr.ID, created.ID)
		_ = drainExec(copyDone, att.Close)
		if kerr != nil {
			return ExecTimeoutExitCode, true, kerr
		}
		return ExecTimeoutExitCode, true, nil
	case <-ctx.Done():
		kerr := c.killExec(ctx, ctr.ID, created.ID)
		_ = drainExec(copyDone, att.Close)
		if kerr != nil {
			c.log.Warn("kill cancelled exec", "exec", created.ID, "error", kerr)
		}
		return ExecTimeoutExitCode, true, wrapErr(ctx.Err(), "exec in %s", id)
	}
}

// ExecInput is the input of an exec: stdin, or req.Stdin held in memory;
// nil when there is none. Giving both is ErrBadRequest.
func ExecInput(req wire.ExecRequest, stdin io.Reader) (io.Reader, error) {
	switch {
	case len(req.Stdin) == 0:
		return stdin, nil
	case stdin != nil:
		return nil, fmt.Errorf("%w: exec input given both as a stream and in the request", ErrBadRequest)
	}
	return bytes.NewReader(req.Stdin), nil
}

// copyInput copies stdin to the exec's input, then closes the input.
// readErr is a failure to read stdin (its end is not one); err a failure to
// write to the process, which stopped reading.
func copyInput(att types.HijackedResponse, stdin io.Reader) (readErr, err error) {
	r := &readRecorder{r: stdin}
	if _, err := io.Copy(att.Conn, r); err != nil {
		return r.err, err
	}
	return nil, att.CloseWrite()
}

// readRecorder keeps the error of its reader, to tell a failed read from
// a failed write after io.Copy.
type readRecorder struct {
	r   io.Reader
	err error
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

// drainExec waits for the output copy to end after a kill, closing the
// stream itself when the daemon has not closed it within execDrainGrace.
// It returns the copy's error, which after a kill says little.
func drainExec(copyDone <-chan error, closeStream func()) error {
	t := time.NewTimer(execDrainGrace)
	defer t.Stop()
	select {
	case err := <-copyDone:
		return err
	case <-t.C:
		closeStream()
		return <-copyDone
	}
}

// killExec SIGKILLs the exec's process tree, restricted to processes in the
// container's cgroup. It works on a context of its own so that it also runs
// after ctx was cancelled.
func (c *Client) killExec(ctx context.Context, containerID, execID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ins, err := c.api.ContainerExecInspect(ctx, execID)
	if err != nil {
		return wrapErr(err, "inspect exec %s", execID)
	}
	if !ins.Running || ins.Pid <= 0 {
		return nil // it ended on its own
	}
	if e, ok := c.sandboxExecs.Load(execID); ok {
		return c.signalInSandbox(ctx, e.(*sandboxExec), "KILL")
	}
	killed, err := killTree(ins.Pid, inCgroupOf(containerID))
	if err != nil {
		return fmt.Errorf("%w: kill exec %s (pid %d): %w", ErrDocker, execID, ins.Pid, err)
	}
	if killed == 0 {
		// Still running per the daemon, yet no such process here: the agent
		// is not in the daemon's PID namespace.
		return fmt.Errorf("%w: exec %s: pid %d is not a process of container %s in the agent's PID namespace; is the agent running beside its dockerd?",
			ErrDocker, execID, ins.Pid, containerID)
	}
	c.log.Debug("killed exec process tree", "exec", execID, "pid", ins.Pid, "processes", killed)
	return nil
}

// waitExecExit polls the exec until the daemon records its exit (it may lag
// the end of the output stream by a moment) and returns the exit code.
func (c *Client) waitExecExit(ctx context.Context, execID string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		ins, err := c.api.ContainerExecInspect(ctx, execID)
		if err != nil {
			return 0, wrapErr(err, "inspect exec %s", execID)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, wrapErr(ctx.Err(), "wait for exec %s to exit", execID)
		case <-t.C:
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}
