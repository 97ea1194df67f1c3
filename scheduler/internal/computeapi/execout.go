package computeapi

import (
	"bufio"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"berth/shared/wire"
)

// The output of POST …/exec is collected from the exec's stream as the
// chunks come and written into its JSON answer piece by piece: it is never
// copied into one buffer, never converted to a string, and never encoded
// whole (issue 12: 2×16 MiB of NUL bytes, each escaped to six characters,
// built a 192 MiB answer with 2 GiB allocated). What /exec holds is at
// most wire.ExecOutputLimit bytes per stream, plus what the chunks'
// sizes round up to (outputBuffer).

// execOutput collects the two streams of an exec (onOutput of ExecStream).
type execOutput struct {
	stdout, stderr outputBuffer
}

// add is ExecStream's onOutput. It keeps data: ExecStream's callers hand
// over chunks they do not reuse.
func (o *execOutput) add(stream string, data []byte) error {
	if stream == "stderr" {
		o.stderr.add(data)
	} else {
		o.stdout.add(data)
	}
	return nil
}

// Chunks of at least retainMin bytes are kept as they came; smaller ones
// are copied into blocks of retainMin bytes, so that a process writing a
// byte at a time costs neither a slice per byte nor more than twice its
// output.
const retainMin = 4 << 10

// outputBuffer is one stream's output: up to wire.ExecOutputLimit bytes
// kept in chunks, the rest counted in dropped. The zero value is ready.
type outputBuffer struct {
	chunks  [][]byte
	size    int64
	dropped int64
	open    bool // the last chunk is a block of ours with room left
}

func (b *outputBuffer) add(p []byte) {
	room := wire.ExecOutputLimit - b.size
	keep := p[:min(int64(len(p)), max(room, 0))]
	b.dropped += int64(len(p) - len(keep))
	b.size += int64(len(keep))
	switch {
	case len(keep) == 0:
	case len(keep) >= retainMin:
		b.chunks, b.open = append(b.chunks, keep), false
	case b.open && cap(b.chunks[len(b.chunks)-1])-len(b.chunks[len(b.chunks)-1]) >= len(keep):
		last := len(b.chunks) - 1
		b.chunks[last] = append(b.chunks[last], keep...)
	default:
		block := append(make([]byte, 0, retainMin), keep...)
		b.chunks, b.open = append(b.chunks, block), true
	}
}

// cutWhole drops an incomplete character at the end of output that was cut
// (dropped > 0) and counts its bytes as dropped, like cutWhole of a buffer.
func (b *outputBuffer) cutWhole() {
	if b.dropped <= 0 {
		return
	}
	var tail []byte // the last bytes, at most utf8.UTFMax-1 of them
	for i := len(b.chunks) - 1; i >= 0 && len(tail) < 3; i-- {
		c := b.chunks[i]
		tail = append(append([]byte(nil), c[max(0, len(c)-(3-len(tail))):]...), tail...)
	}
	n := incompleteTail(tail)
	b.dropped += int64(n)
	b.size -= int64(n)
	for n > 0 {
		last := len(b.chunks) - 1
		k := min(n, len(b.chunks[last]))
		b.chunks[last] = b.chunks[last][:len(b.chunks[last])-k]
		if len(b.chunks[last]) == 0 {
			b.chunks = b.chunks[:last]
		}
		n -= k
	}
	b.open = false
}

// valid reports the output's first invalid UTF-8 byte (an
// *invalidUTF8Error), or nil.
func (b *outputBuffer) valid() error {
	var u utf8Stream
	for _, c := range b.chunks {
		if _, _, err := u.next(c); err != nil {
			return err
		}
	}
	return u.end()
}

// writeEscaped writes the output (valid UTF-8: valid checked it) as the
// inside of a JSON string.
func (b *outputBuffer) writeEscaped(w *bufio.Writer) error {
	var u utf8Stream
	for _, c := range b.chunks {
		head, body, err := u.next(c)
		if err != nil {
			return err
		}
		if err := writeJSONEscaped(w, head); err != nil {
			return err
		}
		if err := writeJSONEscaped(w, body); err != nil {
			return err
		}
	}
	return nil
}

// answer writes the §3.9 answer of an exec that ran to its end with
// exitCode: the output, marked where the limit cut it (truncationMark), or
// the UTF-8 failure Python answered for output that is not text. The JSON
// is what writeJSON writes for an execResponse, byte for byte.
func (o *execOutput) answer(c echo.Context, exitCode int) error {
	o.stdout.cutWhole()
	o.stderr.cutWhole()
	for _, b := range []*outputBuffer{&o.stdout, &o.stderr} {
		if err := b.valid(); err != nil {
			return writeJSON(c, http.StatusOK, execResponse{ExitCode: 1, Stderr: err.Error()})
		}
	}
	marks := truncationMark("stdout", o.stdout.dropped, wire.ExecOutputLimit) + truncationMark("stderr", o.stderr.dropped, wire.ExecOutputLimit)
	if marks != "" && o.stderr.size > 0 && o.stderr.lastByte() != '\n' {
		marks = "\n" + marks
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	w := bufio.NewWriterSize(c.Response(), 32<<10)
	_, _ = w.WriteString(`{"exit_code":` + strconv.Itoa(exitCode) + `,"stdout":"`)
	if err := o.stdout.writeEscaped(w); err != nil {
		return err
	}
	_, _ = w.WriteString(`","stderr":"`)
	if err := o.stderr.writeEscaped(w); err != nil {
		return err
	}
	if err := writeJSONEscaped(w, []byte(marks)); err != nil {
		return err
	}
	_, _ = w.WriteString(`"}`)
	return w.Flush()
}

// lastByte is the output's last byte; size > 0.
func (b *outputBuffer) lastByte() byte {
	last := b.chunks[len(b.chunks)-1]
	return last[len(last)-1]
}
