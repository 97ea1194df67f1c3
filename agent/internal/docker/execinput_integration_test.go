package docker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"berth/shared/wire"
)

// patternInput is n bytes of a repeating pattern, made as they are read.
type patternInput struct{ off, n int64 }

func (p *patternInput) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte('a' + (p.off+int64(i))%26)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// TestExecStreamsInput runs execs whose input and output are far bigger
// than any buffer in the adapter, against the real daemon.
func TestExecStreamsInput(t *testing.T) {
	c := newTestClient(t)
	ctx := testCtx(t)
	ctr := startContainer(t, c, nil)
	const size = 64 << 20

	t.Run("input streamed whole", func(t *testing.T) {
		h := sha256.New()
		_, _ = io.Copy(h, &patternInput{n: size})
		want := hex.EncodeToString(h.Sum(nil))
		var stdout bytes.Buffer
		code, _, err := c.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"sha256sum"}}, &patternInput{n: size}, &stdout, nil)
		if err != nil || code != 0 || !strings.HasPrefix(stdout.String(), want) {
			t.Errorf("got exit %d, %q, %v; want the input's hash %s", code, stdout.String(), err, want)
		}
	})

	t.Run("output streamed whole", func(t *testing.T) {
		var n countWriter
		code, _, err := c.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"head", "-c", "67108864", "/dev/zero"}}, nil, &n, nil)
		if err != nil || code != 0 || n != size {
			t.Errorf("got exit %d, %d bytes, %v; want %d bytes", code, n, err, size)
		}
	})

	t.Run("a process that reads no input ends the exec", func(t *testing.T) {
		code, _, err := c.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "exit 3"}}, &patternInput{n: size}, nil, nil)
		if err != nil || code != 3 {
			t.Errorf("got exit %d, %v; want 3", code, err)
		}
	})

	t.Run("input that breaks off kills the process", func(t *testing.T) {
		in := io.MultiReader(&patternInput{n: 1 << 20}, iotest.ErrReader(io.ErrUnexpectedEOF))
		_, _, err := c.Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "cat > /tmp/cut; echo $? > /tmp/cut.status"}}, in, nil, nil)
		if !errors.Is(err, ErrBadRequest) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got %v, want ErrBadRequest wrapping the input's error", err)
		}
		if got := sh(t, c, ctr.ID, "test -e /tmp/cut.status && echo finished || echo killed"); got != "killed" {
			t.Errorf("the shell %s: a cut input was taken as complete", got)
		}
	})
}

// countWriter counts what is written to it.
type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }
