package agentclient_test

// The raw exec over real mTLS against the real agent API (agent/agenttest:
// the in-memory Docker, with hooks that read the exec's input as a
// stream).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/shared/wire"
)

// pattern is n bytes of a repeating pattern, generated as it is read.
func pattern(n int64) io.Reader { return io.LimitReader(&patternSource{}, n) }

// patternSource is an endless repeating pattern.
type patternSource struct{ off int }

func (s *patternSource) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = "0123456789abcdef\n"[(s.off+i)%17]
	}
	s.off += len(p)
	return len(p), nil
}

// digest hashes what is written to it.
type digest struct {
	h hash.Hash
	n int64
}

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) Write(p []byte) (int, error) { d.n += int64(len(p)); return d.h.Write(p) }
func (d *digest) sum() string                 { return hex.EncodeToString(d.h.Sum(nil)) }

func sumOf(r io.Reader) string {
	d := newDigest()
	_, _ = io.Copy(d, r)
	return d.sum()
}

// readCount counts the reads of an input.
type readCount struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *readCount) Read(p []byte) (int, error) { c.reads.Add(1); return c.r.Read(p) }

func TestExecRaw(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{})
	ctx := streamCtx(t)
	cmd := wire.ExecRequest{Cmd: []string{"x"}}

	t.Run("input and output stream both ways, the outcome after them", func(t *testing.T) {
		const size = 24 << 20
		r.agent.SetExecIO(func(_ context.Context, _ wire.Container, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
			in := newDigest()
			if _, err := io.Copy(in, stdin); err != nil {
				return 0, err
			}
			fmt.Fprintf(stderr, "read %d bytes as %s\n", in.n, req.User)
			_, err := io.Copy(stdout, pattern(size))
			return 3, err
		})
		defer r.agent.SetExecIO(nil)
		out := newDigest()
		res, err := r.client.ExecRaw(ctx, r.ctr.ID, wire.ExecRequest{Cmd: []string{"x"}, User: "dev"}, pattern(size), size, out)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wire.ExecRawResult{ExitCode: 3, Stderr: []byte(fmt.Sprintf("read %d bytes as dev\n", size))}, res); diff != "" {
			t.Errorf("outcome (-want +got):\n%s", diff)
		}
		if out.n != size || out.sum() != sumOf(pattern(size)) {
			t.Errorf("output: %d bytes, want the %d written", out.n, size)
		}
	})

	t.Run("full duplex: output flows while input still comes", func(t *testing.T) {
		r.agent.SetExecIO(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, stdin io.Reader, stdout, _ io.Writer) (int, error) {
			sc := bufio.NewScanner(stdin)
			for sc.Scan() {
				if _, err := fmt.Fprintf(stdout, "echo %s\n", sc.Text()); err != nil {
					return 0, err
				}
			}
			return 0, sc.Err()
		})
		defer r.agent.SetExecIO(nil)
		inR, inW := io.Pipe()
		lines := make(chan string)
		outR, outW := io.Pipe()
		go func() {
			sc := bufio.NewScanner(outR)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		done := make(chan error, 1)
		go func() {
			_, err := r.client.ExecRaw(ctx, r.ctr.ID, cmd, inR, -1, outW)
			_ = outW.Close()
			done <- err
		}()
		for i := range 3 { // each line comes back before the next is sent
			if _, err := fmt.Fprintf(inW, "line %d\n", i); err != nil {
				t.Fatal(err)
			}
			if got, want := <-lines, fmt.Sprintf("echo line %d", i); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		_ = inW.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stderr is cut at its limit, the cut counted", func(t *testing.T) {
		r.agent.SetExecIO(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, _ io.Reader, _, stderr io.Writer) (int, error) {
			_, err := io.Copy(stderr, pattern(100<<10))
			return 1, err
		})
		defer r.agent.SetExecIO(nil)
		res, err := r.client.ExecRaw(ctx, r.ctr.ID, cmd, nil, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(pattern(wire.ExecRawStderrLimit))
		if !bytes.Equal(res.Stderr, want) || res.StderrDropped != 100<<10-wire.ExecRawStderrLimit || res.ExitCode != 1 {
			t.Errorf("got %d bytes of stderr, %d dropped, exit %d; want %d, %d, 1",
				len(res.Stderr), res.StderrDropped, res.ExitCode, wire.ExecRawStderrLimit, 100<<10-wire.ExecRawStderrLimit)
		}
	})

	t.Run("a process that reads no input still answers", func(t *testing.T) {
		// The agent drops the unread input, so its answer reaches a
		// client still sending; run it a few times, for the races.
		r.agent.SetExecIO(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, stdin io.Reader, _, stderr io.Writer) (int, error) {
			if _, err := io.CopyN(io.Discard, stdin, 64<<10); err != nil { // the upload has begun
				return 0, err
			}
			_, err := io.WriteString(stderr, "bash: /root/x: Permission denied\n")
			return 1, err
		})
		defer r.agent.SetExecIO(nil)
		for range 5 {
			res, err := r.client.ExecRaw(ctx, r.ctr.ID, cmd, pattern(8<<20), 8<<20, nil)
			if err != nil || res.ExitCode != 1 || string(res.Stderr) != "bash: /root/x: Permission denied\n" {
				t.Fatalf("got %+v, %v; want exit 1 with the process's stderr", res, err)
			}
		}
	})

	t.Run("refusals come before any input is sent", func(t *testing.T) {
		tests := []struct {
			name string
			ctx  context.Context
			id   string
			req  wire.ExecRequest
			want error
		}{
			{"no such container", ctx, "nope", cmd, agentclient.ErrNotFound},
			{"a stale epoch", agentclient.WithEpoch(ctx, 2), r.ctr.ID, cmd, agentclient.ErrStaleEpoch},
			{"no command", ctx, r.ctr.ID, wire.ExecRequest{}, agentclient.ErrBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := &readCount{r: pattern(8 << 20)}
				_, err := r.client.ExecRaw(tt.ctx, tt.id, tt.req, in, 8<<20, nil)
				if !errors.Is(err, tt.want) {
					t.Errorf("got %v, want %v", err, tt.want)
				}
				if n := in.reads.Load(); n != 0 {
					t.Errorf("the input was read %d times: the upload went out", n)
				}
			})
		}
		if _, err := r.client.ExecRaw(ctx, r.ctr.ID, wire.ExecRequest{Cmd: []string{"x"}, Stdin: []byte("x")}, nil, 0, nil); !errors.Is(err, agentclient.ErrBadRequest) {
			t.Errorf("input in the request: got %v, want ErrBadRequest", err)
		}
	})

	t.Run("a failure after the output started is the agent's error", func(t *testing.T) {
		r.agent.SetExecIO(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, _ io.Reader, stdout, _ io.Writer) (int, error) {
			_, _ = io.WriteString(stdout, "partial")
			return 0, errors.New("the daemon's stream broke")
		})
		defer r.agent.SetExecIO(nil)
		var out bytes.Buffer
		_, err := r.client.ExecRaw(ctx, r.ctr.ID, cmd, nil, 0, &out)
		var ae *agentclient.Error
		if !errors.Is(err, agentclient.ErrDocker) || !errors.As(err, &ae) || ae.Status != 502 {
			t.Errorf("got %v, want a 502 docker_error", err)
		}
		if out.String() != "partial" {
			t.Errorf("output %q, want the part written", out.String())
		}
	})

	t.Run("input that breaks off fails the exec on both sides", func(t *testing.T) {
		hookErr := make(chan error, 1)
		r.agent.SetExecIO(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, stdin io.Reader, _, _ io.Writer) (int, error) {
			_, err := io.Copy(io.Discard, stdin)
			hookErr <- err
			return 0, nil // as `cat > file` would, had its input just ended
		})
		defer r.agent.SetExecIO(nil)
		broken := errors.New("spool read failed")
		in := io.MultiReader(pattern(1<<20), errReader{broken})
		_, err := r.client.ExecRaw(ctx, r.ctr.ID, cmd, in, 2<<20, nil)
		if !errors.Is(err, broken) {
			t.Errorf("got %v, want the input's own error", err)
		}
		if err := <-hookErr; err == nil {
			t.Error("the process saw its cut input end cleanly")
		}
	})

	t.Run("a failing output writer stops the exec", func(t *testing.T) {
		hookDone := make(chan error, 1)
		r.agent.SetExecIO(func(ctx context.Context, _ wire.Container, _ wire.ExecRequest, _ io.Reader, stdout, _ io.Writer) (int, error) {
			_, err := io.Copy(stdout, &patternSource{}) // forever, until the client leaves
			hookDone <- err
			return 0, err
		})
		defer r.agent.SetExecIO(nil)
		stop := errors.New("not text")
		_, err := r.client.ExecRaw(ctx, r.ctr.ID, cmd, nil, 0, &failAfter{n: 1 << 20, err: stop})
		if !errors.Is(err, stop) {
			t.Errorf("got %v, want the writer's error", err)
		}
		if err := <-hookDone; err == nil {
			t.Error("the process kept writing")
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// failAfter takes n bytes, then fails with err.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}
