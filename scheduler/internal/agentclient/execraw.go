package agentclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"berth/shared/wire"
)

// ExecRaw runs req.Cmd in the container with its input read from stdin
// and its output copied to stdout as the process writes it, both as raw
// streams of any size (wire.SuffixExecRaw): memory is bounded by the copy
// buffers. stdin may be nil (no input); size is its length in bytes, or -1
// when unknown. stdout may be nil (the output is dropped). req.Stdin must
// be empty. It returns once the output has ended, with the outcome: exit
// code, timed out, and the first wire.ExecRawStderrLimit bytes of stderr
// with the count of those dropped.
//
// Errors: the agent's, before the process started (ErrNotFound,
// ErrConflict, ErrStaleEpoch, ErrBadRequest, …), or after it, when the exec
// failed once its output had started (an *Error as well); ErrUnreachable
// when the agent could not be reached, or its answer broke off or ended
// without its outcome (stdout may then have had part of the output); the
// context's error when ctx ended; stdin's own error, wrapped, when reading
// it failed (the agent then kills the process: it never sees a cut input
// as complete). An error of stdout's Write ends the exec (the connection
// is closed: the agent kills the process) and comes back wrapped, for
// errors.Is and errors.As.
func (c *Client) ExecRaw(ctx context.Context, id string, req wire.ExecRequest, stdin io.Reader, size int64, stdout io.Writer) (res wire.ExecRawResult, err error) {
	path := containerPath(id, wire.SuffixExecRaw)
	if c.observe != nil {
		start := time.Now()
		defer func() { c.observe(http.MethodPost+" "+route(path), err, time.Since(start)) }()
	}
	if len(req.Stdin) > 0 {
		return res, fmt.Errorf("%w: a raw exec's input is its stdin stream, not req.Stdin", ErrBadRequest)
	}
	head, err := json.Marshal(req)
	if err != nil {
		return res, err
	}
	in := &inputReader{r: stdin}
	var body io.Reader = in
	if stdin == nil || size == 0 {
		body, size = http.NoBody, 0 // an empty input: no body, no 100-continue
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, body)
	if err != nil {
		return res, err
	}
	hr.ContentLength = size
	hr.Header.Set(wire.HeaderExecRequest, string(head))
	setEpoch(ctx, hr.Header)
	if body != http.NoBody {
		hr.Header.Set("Content-Type", wire.ContentTypeRaw)
		hr.Header.Set("Expect", "100-continue")
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		if ierr := in.failure(); ierr != nil {
			return res, fmt.Errorf("raw exec input for %s: %w", c.ServerID, ierr)
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("raw exec on %s: %w", c.ServerID, ctx.Err())
		}
		return res, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.ServerID, err)
	}
	if resp.StatusCode >= 400 {
		return res, agentError(resp)
	}
	defer resp.Body.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	res, err = c.readExecFrames(resp.Body, stdout)
	switch {
	case err == nil, errors.Is(err, errOutput):
		return res, err
	case in.failure() != nil:
		return res, fmt.Errorf("raw exec input for %s: %w", c.ServerID, in.failure())
	case ctx.Err() != nil:
		return res, fmt.Errorf("raw exec on %s: %w", c.ServerID, ctx.Err())
	}
	return res, err
}

// errOutput marks the failure of a raw exec's output writer.
var errOutput = errors.New("raw exec output")

// readExecFrames reads a raw exec's answer (shared/wire/execraw.go): stdout
// frames go to stdout, the end frame is the outcome. A failed write to
// stdout is errOutput (wrapping the writer's error); a body that breaks
// off, ends early or holds another frame is ErrUnreachable; an outcome
// with Error is that *Error.
func (c *Client) readExecFrames(body io.Reader, stdout io.Writer) (wire.ExecRawResult, error) {
	var res wire.ExecRawResult
	br := bufio.NewReaderSize(body, 32<<10)
	out := &outputWriter{w: stdout}
	for {
		var h [wire.ExecRawFrameHeader]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return res, fmt.Errorf("%w: %s: raw exec answer ended without its outcome: %v", ErrUnreachable, c.ServerID, err)
		}
		kind, n := wire.ParseExecRawFrame(h)
		switch {
		case kind == wire.ExecRawStdout:
			if _, err := io.CopyN(out, br, int64(n)); err != nil {
				if out.err != nil {
					return res, fmt.Errorf("%w from %s: %w", errOutput, c.ServerID, out.err)
				}
				return res, fmt.Errorf("%w: %s: raw exec output broke off: %v", ErrUnreachable, c.ServerID, err)
			}
		case kind == wire.ExecRawEnd && n <= wire.ExecRawMaxEnd:
			raw := make([]byte, n)
			if _, err := io.ReadFull(br, raw); err != nil {
				return res, fmt.Errorf("%w: %s: raw exec outcome broke off: %v", ErrUnreachable, c.ServerID, err)
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return res, fmt.Errorf("%w: %s: raw exec outcome: %v", ErrUnreachable, c.ServerID, err)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return res, fmt.Errorf("%w: %s: raw exec answer goes on after its outcome", ErrUnreachable, c.ServerID)
			}
			if res.Error != nil {
				return res, &Error{Status: res.Status, Code: res.Error.Code, Message: res.Error.Message}
			}
			return res, nil
		default:
			return res, fmt.Errorf("%w: %s: raw exec answer holds a frame of kind %d and %d bytes", ErrUnreachable, c.ServerID, kind, n)
		}
	}
}

// inputReader keeps the error of its reader (its end is not one), to tell
// a failed input from a failed connection. The transport reads it in a
// goroutine of its own, which may outlive the answer.
type inputReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (i *inputReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		i.mu.Lock()
		i.err = err
		i.mu.Unlock()
	}
	return n, err
}

func (i *inputReader) failure() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// outputWriter keeps the error of its writer, to tell a failed write from
// a failed read after io.Copy.
type outputWriter struct {
	w   io.Writer
	err error
}

func (o *outputWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	} else if n < len(p) {
		o.err = io.ErrShortWrite
		err = o.err
	}
	return n, err
}
