package orchestrator

import (
	"context"
	"errors"
	"io"

	"berth/scheduler/internal/registry"
)

// errRawStdin: ExecRaw takes its input as a stream, never in req.Stdin.
var errRawStdin = errors.New("orchestrator: ExecRaw takes its input as stdin, not in ExecRequest.Stdin")

// ExecRaw runs a command in a running workspace with its input streamed
// from stdin (size bytes, -1 when unknown; nil: no input) and its output
// streamed to stdout as the process writes it, through the agent's raw exec
// (agentclient.Client.ExecRaw): nothing is held whole in memory. Stdout of
// the result is empty; Stderr holds the first wire.ExecRawStderrLimit bytes
// (StderrDropped counts the rest). It fails like Exec (ErrNoContainer,
// ErrNotRunning, ErrServerUnavailable — also when the stream broke off —
// or the agent's error); an error of stdout's Write comes back wrapped, as
// is.
func (l *Lifecycle) ExecRaw(ctx context.Context, ws registry.Workspace, req ExecRequest, stdin io.Reader, size int64, stdout io.Writer) (ExecResult, error) {
	if len(req.Stdin) > 0 {
		return ExecResult{}, errRawStdin
	}
	wreq, err := execRequest(ws, req)
	if err != nil {
		return ExecResult{}, err
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return ExecResult{}, err
	}
	res, err := client.ExecRaw(cctx, ws.ContainerID, wreq, stdin, size, stdout)
	if err != nil {
		return ExecResult{}, agentError(err)
	}
	_ = l.touch(ctx, ws.ID)
	return ExecResult{ExitCode: res.ExitCode, Stderr: res.Stderr, StderrDropped: res.StderrDropped, TimedOut: res.TimedOut}, nil
}
