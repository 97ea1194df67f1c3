package agentclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/shared/wire"
)

// TestAgentProcessExecRaw drives the raw exec of the real agent binary
// against the real Docker: files far bigger than any buffer go in and out
// byte for byte, and every way an exec can fail ends as it should.
func TestAgentProcessExecRaw(t *testing.T) {
	a := startAgent(t)
	ctx := ctxT(t)
	name := fmt.Sprintf("berth-test-%d", time.Now().UnixNano())
	ctr, err := a.client.Create(ctx, wire.CreateContainerRequest{
		Name: name, Image: testImage(), WorkspaceID: "ws-" + name[11:], Epoch: 3, Start: true,
		Mounts:    []wire.Mount{{Source: "workspaces/" + name + "/home", Target: "/home/dev"}},
		Resources: wire.Resources{CPU: 1, MemoryMB: 256},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = a.client.Remove(context.Background(), ctr.ID, true) })
	dev := func(script string) wire.ExecRequest {
		return wire.ExecRequest{Cmd: []string{"bash", "-c", script}, User: "dev", WorkingDir: "/home/dev", TimeoutSeconds: 120}
	}
	const size = 100 << 20 // more than the container's memory limit: nothing may hold it whole

	t.Run("a file goes in and comes out byte for byte", func(t *testing.T) {
		res, err := a.client.ExecRaw(ctx, ctr.ID, dev("cat > big"), pattern(size), size, nil)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("write: %+v, %v", res, err)
		}
		out := newDigest()
		res, err = a.client.ExecRaw(ctx, ctr.ID, dev("cat big"), nil, 0, out)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("read: %+v, %v", res, err)
		}
		if out.n != size || out.sum() != sumOf(pattern(size)) {
			t.Errorf("read back %d bytes, want the %d written, same hash", out.n, size)
		}
	})

	t.Run("a command that reads no input answers", func(t *testing.T) {
		res, err := a.client.ExecRaw(ctx, ctr.ID, dev("echo refused >&2; exit 3"), pattern(32<<20), 32<<20, nil)
		if err != nil || res.ExitCode != 3 || string(res.Stderr) != "refused\n" {
			t.Errorf("got %+v, %v; want exit 3 with its stderr", res, err)
		}
	})

	t.Run("refused before any upload", func(t *testing.T) {
		in := &readCount{r: pattern(32 << 20)}
		if _, err := a.client.ExecRaw(agentclient.WithEpoch(ctx, 2), ctr.ID, dev("cat > x"), in, 32<<20, nil); !errors.Is(err, agentclient.ErrStaleEpoch) {
			t.Errorf("got %v, want ErrStaleEpoch", err)
		}
		if n := in.reads.Load(); n != 0 {
			t.Errorf("the input was read %d times", n)
		}
	})

	t.Run("input that breaks off never completes the file", func(t *testing.T) {
		broken := errors.New("spool read failed")
		in := io.MultiReader(pattern(8<<20), errReader{broken})
		_, err := a.client.ExecRaw(ctx, ctr.ID, dev("cat > cut; echo $? > cut.status"), in, 16<<20, nil)
		if !errors.Is(err, broken) {
			t.Errorf("got %v, want the input's error", err)
		}
		// The agent kills the process when its input breaks off; it may
		// see that a moment after the client gave up.
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := a.client.Exec(ctx, ctr.ID, dev("test -e cut.status && echo finished; pgrep -x cat || echo no-cat"))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(string(res.Stdout))
			if got == "no-cat" {
				break
			}
			if strings.Contains(got, "finished") || time.Now().After(deadline) {
				t.Fatalf("after the cut: %q, want cat killed before it finished", got)
			}
			time.Sleep(100 * time.Millisecond) // polling the container: nothing to wait on
		}
	})

	t.Run("an output writer that fails stops the process", func(t *testing.T) {
		stop := errors.New("not text")
		_, err := a.client.ExecRaw(ctx, ctr.ID, dev("cat /dev/zero"), nil, 0, &failAfter{n: 4 << 20, err: stop})
		if !errors.Is(err, stop) {
			t.Errorf("got %v, want the writer's error", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := a.client.Exec(ctx, ctr.ID, dev("pgrep -x cat || echo none"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(res.Stdout)) == "none" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cat /dev/zero still runs: %q", res.Stdout)
			}
			time.Sleep(100 * time.Millisecond) // polling the container: nothing to wait on
		}
	})
}
