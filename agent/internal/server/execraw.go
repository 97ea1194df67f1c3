package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/shared/wire"
)

// execRaw runs a command with the request body as its stdin and answers
// with its stdout in frames, then the outcome (the wire design is in
// shared/wire/execraw.go). Memory per request is bounded by the copy
// buffers, whatever the streams' sizes.
func (s *Server) execRaw(c echo.Context) error {
	req, err := decodeExecHeader(c.Request().Header.Get(wire.HeaderExecRequest))
	if err != nil {
		return err
	}
	in := &rawInput{r: c.Request().Body}
	in.done.Store(c.Request().ContentLength == 0)
	out := &rawOutput{c: c, in: in, log: s.log}
	stderr := &limitedBuffer{limit: wire.ExecRawStderrLimit}
	code, timedOut, err := s.docker.Exec(c.Request().Context(), c.Param("id"), req, in, out, stderr)
	if in.started.Load() {
		s.drainInput(c, in)
	}
	if err != nil && !out.started {
		return err // nothing answered yet: an ordinary error answer
	}
	res := wire.ExecRawResult{ExitCode: code, TimedOut: timedOut, Stderr: stderr.Bytes(), StderrDropped: stderr.dropped}
	if err != nil {
		status, body := s.errorAnswer(err, c)
		res.Status, res.Error = status, &body
	}
	if res.Error != nil && len(res.Error.Message) > maxEndMessage {
		res.Error.Message = res.Error.Message[:maxEndMessage]
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if err := out.frame(wire.ExecRawEnd, raw); err != nil {
		s.log.Debug("raw exec: outcome not delivered", "error", err)
	}
	return nil
}

// maxEndMessage bounds an error's message in the end frame, which
// wire.ExecRawMaxEnd bounds whole (stderr takes 87 KiB of it, in base64).
const maxEndMessage = 64 << 10

// decodeExecHeader reads the ExecRequest of a raw exec, strictly (as
// decode does a body).
func decodeExecHeader(h string) (wire.ExecRequest, error) {
	var req wire.ExecRequest
	if h == "" {
		return req, badRequest(wire.HeaderExecRequest + " is required")
	}
	dec := json.NewDecoder(strings.NewReader(h))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest("invalid " + wire.HeaderExecRequest + ": " + err.Error())
	}
	if len(req.Cmd) == 0 {
		return req, badRequest("cmd is required")
	}
	if len(req.Stdin) > 0 {
		return req, badRequest("a raw exec's input is the request body, not stdin")
	}
	return req, nil
}

// drainInput reads and drops what the process left of the request body,
// for up to wire.ExecRawDrainSeconds, so that the answer reaches a client
// that is still sending: an HTTP/1 server that answers before the body's
// end closes the connection under the client's upload.
func (s *Server) drainInput(c echo.Context, in *rawInput) {
	rc := http.NewResponseController(c.Response())
	if err := rc.SetReadDeadline(time.Now().Add(wire.ExecRawDrainSeconds * time.Second)); err != nil {
		s.log.Debug("raw exec: no read deadline for the drain", "error", err)
	}
	if n, err := io.Copy(io.Discard, in.r); n > 0 || err != nil {
		s.log.Debug("raw exec: dropped input the process did not read", "bytes", n, "error", err)
	}
	_ = rc.SetReadDeadline(time.Time{})
}

// rawInput is the request body as the process's input. started tells
// whether it was read at all: a body never read was never asked for
// (Expect: 100-continue), and needs no drain; done, whether it was read to
// its end. The adapter reads it in a goroutine of its own.
type rawInput struct {
	r       io.Reader
	started atomic.Bool
	done    atomic.Bool
}

func (in *rawInput) Read(p []byte) (int, error) {
	in.started.Store(true)
	n, err := in.r.Read(p)
	if errors.Is(err, io.EOF) {
		in.done.Store(true)
	}
	return n, err
}

// rawOutput writes the answer's frames: each write of the process's
// stdout is one ExecRawStdout frame, flushed; the first frame starts the
// 200 answer. The adapter uses it from one goroutine, and never after Exec
// returns; the handler then writes the ExecRawEnd frame.
type rawOutput struct {
	c       echo.Context
	in      *rawInput
	log     hclog.Logger
	started bool
}

func (o *rawOutput) Write(p []byte) (int, error) {
	if err := o.frame(wire.ExecRawStdout, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// frame writes one frame and flushes it, starting the answer first.
func (o *rawOutput) frame(kind byte, payload []byte) error {
	w := o.c.Response()
	if !o.started {
		o.started = true
		if !o.in.done.Load() && o.c.Request().ProtoMajor == 1 {
			// The input may still come in while the output goes out:
			// without full duplex an HTTP/1 server drops the unread body
			// when the answer starts (HTTP/2 streams are always full
			// duplex). Enabled only here, once the answer starts, and
			// with the connection closed after the answer: a full-duplex
			// handler that leaves a body unread makes the server panic
			// when it reads the next request (golang/go#68560); a refusal
			// reads no body and enables none.
			if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
				o.log.Debug("raw exec: full duplex not available", "error", err)
			}
			w.Header().Set("Connection", "close")
		}
		w.Header().Set(echo.HeaderContentType, wire.ContentTypeExecRaw)
		w.WriteHeader(http.StatusOK)
	}
	h := wire.ExecRawFrame(kind, len(payload))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	w.Flush()
	return nil
}
