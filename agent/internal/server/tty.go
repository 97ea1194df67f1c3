package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"berth/agent/internal/docker"
	"berth/shared/wire"
)

const (
	// maxTTYInputMessage bounds one input or control message; input is
	// streamed to the process, so this bounds nothing in memory.
	maxTTYInputMessage = 1 << 20
	// maxTTYControl bounds the JSON of one control message.
	maxTTYControl = 4 << 10
	// ttyOutputChunk is the largest output message.
	ttyOutputChunk = 32 << 10
	// ttyResizeTimeout bounds one resize call to the daemon.
	ttyResizeTimeout = 10 * time.Second
	// ttyWaitTimeout bounds the wait for the exit code after the output ended.
	ttyWaitTimeout = 15 * time.Second
	// maxCloseReason is the longest WebSocket close reason.
	maxCloseReason = 123
)

// tty serves GET /containers/:id/tty: a TTY exec streamed over a WebSocket
// (framing in shared/wire/streams.go). Everything that can fail before the
// upgrade — the request, the container, the exec's start — is an ordinary
// error answer; after it, the close status says how the stream ended.
func (s *Server) tty(c echo.Context) error {
	req, err := decodeTTYRequest(c.Request().Header.Get(wire.HeaderTTYRequest))
	if err != nil {
		return err
	}
	if !isWebSocketUpgrade(c.Request()) {
		return badRequest("tty: a WebSocket upgrade is required")
	}
	ctx, done, ok := s.streams.open(c.Request().Context())
	if !ok {
		return errShuttingDown
	}
	defer done()
	id := c.Param("id")
	tty, err := s.docker.ExecTTY(ctx, id, req)
	if err != nil {
		return notRunning(err)
	}
	defer tty.Close()
	ws, err := websocket.Accept(c.Response(), c.Request(), nil)
	if err != nil { // Accept has answered
		s.log.Debug("tty upgrade failed", "id", short(id), "error", err)
		return nil
	}
	s.streamsOpen.WithLabelValues("tty").Inc()
	defer s.streamsOpen.WithLabelValues("tty").Dec()
	s.log.Debug("tty opened", "id", short(id), "cmd", req.Cmd)
	how := s.serveTTY(ctx, ws, tty)
	s.log.Debug("tty closed", "id", short(id), "end", how)
	return nil
}

// decodeTTYRequest reads the handshake's TTYRequest strictly.
func decodeTTYRequest(raw string) (wire.TTYRequest, error) {
	var req wire.TTYRequest
	if raw == "" {
		return req, badRequest("tty: the " + wire.HeaderTTYRequest + " header is required")
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest("tty: invalid " + wire.HeaderTTYRequest + " header: " + err.Error())
	}
	return req, nil
}

// serveTTY pumps the stream until the process exits, the scheduler leaves
// or ctx ends, closes the WebSocket accordingly and returns how it ended.
// Output runs on the calling goroutine, input on one of its own; both have
// ended when it returns.
func (s *Server) serveTTY(ctx context.Context, ws *websocket.Conn, tty docker.TTY) string {
	ws.SetReadLimit(maxTTYInputMessage)
	var wg sync.WaitGroup
	defer wg.Wait()
	left := make(chan struct{}) // the scheduler closed, or the connection broke
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(left)
		s.ttyInput(ws, tty)
	}()
	outputDone := make(chan struct{})
	wg.Add(1)
	go func() { // unblocks the output's Read when the stream ends otherwise
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-left:
		case <-outputDone:
			return
		}
		tty.Close()
	}()
	err := s.ttyOutput(ctx, ws, tty)
	close(outputDone)
	defer tty.Close() // before wg.Wait: unblocks an input write

	switch {
	case ctx.Err() != nil:
		_ = ws.Close(websocket.StatusGoingAway, "agent shutting down")
		return "shutdown"
	case isClosed(left):
		_ = ws.CloseNow()
		return "scheduler left"
	case err != nil:
		_ = ws.Close(websocket.StatusInternalError, closeReason(err.Error()))
		return err.Error()
	}
	wctx, cancel := context.WithTimeout(ctx, ttyWaitTimeout)
	defer cancel()
	code, err := tty.Wait(wctx)
	if err != nil {
		_ = ws.Close(websocket.StatusInternalError, closeReason("exit code unknown: "+err.Error()))
		return err.Error()
	}
	reason := wire.TTYExitReason(code)
	_ = ws.Close(websocket.StatusNormalClosure, reason)
	return reason
}

// ttyOutput sends the terminal's output as binary messages, each write
// bounded by the write timeout, until the output ends (nil) or fails.
func (s *Server) ttyOutput(ctx context.Context, ws *websocket.Conn, tty docker.TTY) error {
	buf := make([]byte, ttyOutputChunk)
	for {
		n, err := tty.Read(buf)
		if n > 0 {
			// Not ctx: the library closes the connection when a write's
			// context ends, even one that already finished, and that would
			// beat the close frame the shutdown sends.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout)
			werr := ws.Write(wctx, websocket.MessageBinary, buf[:n])
			cancel()
			if werr != nil {
				return fmt.Errorf("write output: %w", werr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read output: %w", err)
		}
	}
}

// ttyInput passes binary messages to the process and applies control
// messages until the connection ends. Input the process no longer takes
// (it exited) is discarded, so that the exit is still reported. A control
// message that is not JSON closes the stream (1003); an unknown type is
// ignored.
func (s *Server) ttyInput(ws *websocket.Conn, tty docker.TTY) {
	var inputErr error
	for {
		// Not the stream's context: its end is reported by a close
		// handshake, which needs this read.
		typ, r, err := ws.Reader(context.Background())
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			if inputErr == nil {
				_, inputErr = io.Copy(tty, r)
				if inputErr != nil {
					s.log.Debug("tty input not taken", "error", inputErr)
				}
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			continue
		}
		var ctl wire.TTYControl
		dec := json.NewDecoder(io.LimitReader(r, maxTTYControl))
		dec.DisallowUnknownFields()
		err = dec.Decode(&ctl)
		if _, cerr := io.Copy(io.Discard, r); cerr != nil {
			return
		}
		if err != nil {
			_ = ws.Close(websocket.StatusUnsupportedData, closeReason("invalid control message: "+err.Error()))
			return
		}
		switch ctl.Type {
		case wire.TTYControlResize:
			ctx, cancel := context.WithTimeout(context.Background(), ttyResizeTimeout)
			if err := tty.Resize(ctx, ctl.Rows, ctl.Cols); err != nil {
				s.log.Debug("tty resize failed", "rows", ctl.Rows, "cols", ctl.Cols, "error", err)
			}
			cancel()
		default:
			s.log.Debug("unknown tty control message ignored", "type", ctl.Type)
		}
	}
}

// isWebSocketUpgrade reports whether r asks for a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// closeReason cuts s to fit a close frame, on a UTF-8 boundary.
func closeReason(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// notRunning turns the adapter's "not running" (ErrConflict, the only
// conflict ExecTTY and Address know) into the streams' not_running.
func notRunning(err error) error {
	if errors.Is(err, docker.ErrConflict) {
		return fmt.Errorf("%w: %w", errNotRunning, err)
	}
	return err
}
