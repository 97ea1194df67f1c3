package computeapi_test

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"

	"berth/shared/testutil"
	"berth/shared/wire"
)

// TestNULExecIsBounded is issue 12's third figure: one /exec printing
// 2×16 MiB of NUL bytes built a 192 MiB answer with 2 GiB allocated. Here
// the same exec runs through the whole path (compute API over HTTP → real
// orchestrator → agent client over mTLS → the agent API over the in-memory
// Docker, all in this process) and must allocate less than 64 MiB: the
// output is collected as the agent's chunks and written into the answer
// piece by piece (execout.go), with the escaped answer (6 bytes a NUL)
// streamed to the client, never held.
func TestNULExecIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2×16 MiB through the whole path")
	}
	s := newStack(t)
	zeros := make([]byte, 32<<10) // what one read of a pipe returns
	s.agent.SetExecIO(func(_ context.Context, _ wire.Container, _ wire.ExecRequest, _ io.Reader, stdout, stderr io.Writer) (int, error) {
		for _, w := range []io.Writer{stdout, stderr} {
			for range wire.ExecOutputLimit / len(zeros) {
				if _, err := w.Write(zeros); err != nil {
					return 0, err
				}
			}
		}
		return 0, nil
	})
	var status int
	var n int64
	var head, tail string
	cost := testutil.Measure(func() {
		resp := s.open(t, "POST", "/workspaces/ws1/exec", strings.NewReader(`{"command":"head -c 16M /dev/zero; head -c 16M /dev/zero >&2"}`), nil)
		defer resp.Body.Close()
		status = resp.StatusCode
		r := bufio.NewReaderSize(resp.Body, 64<<10)
		b, _ := r.Peek(32)
		head = string(b)
		n, _ = io.Copy(tailWriter{&tail}, r)
	})
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// Each NUL is \u0000 (6 bytes) in the answer.
	if want := int64(2*6*wire.ExecOutputLimit + len(`{"exit_code":0,"stdout":"","stderr":""}`)); n != want {
		t.Errorf("answer of %d bytes, want %d", n, want)
	}
	if !strings.HasPrefix(head, `{"exit_code":0,"stdout":"\u0000`) || !strings.HasSuffix(tail, `\u0000"}`) {
		t.Errorf("answer starts %q, ends %q", head, tail)
	}
	if cost.Alloc >= 64<<20 {
		t.Errorf("the exec allocated %d MiB, want < 64 MiB", cost.Alloc>>20)
	}
	t.Logf("2×16 MiB of NUL bytes: a %d MiB answer for %d MiB allocated (the agent's side included)", n>>20, cost.Alloc>>20)
}

// tailWriter keeps the last 16 bytes written.
type tailWriter struct{ s *string }

func (w tailWriter) Write(p []byte) (int, error) {
	*w.s = (*w.s + string(p[max(0, len(p)-16):]))
	*w.s = (*w.s)[max(0, len(*w.s)-16):]
	return len(p), nil
}
