package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/orchestrator"
	"berth/shared/wire"
)

func TestExecRaw(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	var seen wire.ExecRequest
	r.agents["ws-1"].SetExecIO(func(_ context.Context, _ wire.Container, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		seen = req
		if _, err := io.Copy(stdout, stdin); err != nil {
			return 0, err
		}
		_, err := io.WriteString(stderr, "done")
		return 5, err
	})

	var out bytes.Buffer
	res, err := r.orch.ExecRaw(ctx, ws, orchestrator.ExecRequest{Command: "cat"}, strings.NewReader("payload"), 7, &out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orchestrator.ExecResult{ExitCode: 5, Stderr: []byte("done")}, res); diff != "" || out.String() != "payload" {
		t.Errorf("result (-want +got):\n%s\noutput %q, want the input back", diff, out.String())
	}
	want := wire.ExecRequest{Cmd: []string{"bash", "-c", "cat"}, User: "dev", WorkingDir: "/home/dev", TimeoutSeconds: 1}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("the agent ran (-want +got):\n%s", diff)
	}

	if _, err := r.orch.ExecRaw(ctx, ws, orchestrator.ExecRequest{Command: "cat", Stdin: []byte("x")}, nil, 0, nil); err == nil {
		t.Error("input in the request: got no error")
	}
	r.agents["ws-1"].SetDown(true)
	_, err = r.orch.ExecRaw(ctx, ws, orchestrator.ExecRequest{Command: "cat"}, nil, 0, nil)
	if !errors.Is(err, orchestrator.ErrServerUnavailable) || !errors.Is(err, agentclient.ErrUnavailable) {
		t.Errorf("agent down: got %v, want ErrServerUnavailable", err)
	}
	r.agents["ws-1"].SetDown(false)
	if err := r.orch.Stop(ctx, ws); err != nil {
		t.Fatal(err)
	}
	ws, _ = r.orch.Get(ctx, "w1")
	if _, err := r.orch.ExecRaw(ctx, ws, orchestrator.ExecRequest{Command: "cat"}, nil, 0, nil); !errors.Is(err, orchestrator.ErrNotRunning) {
		t.Errorf("stopped: got %v, want ErrNotRunning", err)
	}
}
