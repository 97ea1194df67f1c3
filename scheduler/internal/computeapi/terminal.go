package computeapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// The terminal (§3.21): GET /terminal/{id}?session_id=&shell= upgraded to
// a WebSocket and relayed to a tmux client in the workspace (the
// orchestrator's OpenTerminal, a TTY stream through the workspace's
// agent), and DELETE /terminal/{id}/session/{sid}, which kills a session.
//
// One session runs three goroutines besides the handler's, all ended and
// waited for before the handler returns: the terminal's output into a
// channel, the client's frames into the terminal, and a keepalive ping.
// The handler writes the output, batched (outputBatcher). Nothing is
// buffered without bound: output waits for the client (each write bounded
// by terminalWriteTimeout), input waits for the terminal.

const (
	// streamTerminal is the terminals' kind in a.streams.
	streamTerminal = "terminal"

	// terminalFrameInterval is the output batching interval: output that
	// follows a frame within it is gathered until it has passed.
	terminalFrameInterval = 16 * time.Millisecond
	// terminalMaxFrame caps one output frame.
	terminalMaxFrame = 64 << 10
	// terminalReadChunk is the most output read from the terminal at once.
	terminalReadChunk = 32 << 10
	// terminalMaxMessage bounds one client message (uvicorn's default
	// max_size). It is streamed to the terminal, never held whole.
	terminalMaxMessage = 16 << 20
	// terminalResizeTimeout bounds one resize.
	terminalResizeTimeout = 10 * time.Second
)

// Bounds of a session's writes and keepalive. Variables so that tests can
// shorten them; nothing else changes them.
var (
	// terminalWriteTimeout bounds one output frame: a client that does not
	// take it in time is cut off (the shell goes on in tmux).
	terminalWriteTimeout = 10 * time.Second
	// terminalPingInterval is how often an idle client is pinged, and
	// terminalPingTimeout how long its pong may take before the session
	// ends: a client that vanished without a TCP close frees its slot.
	terminalPingInterval = 30 * time.Second
	terminalPingTimeout  = 15 * time.Second
)

// terminalIO is what a session uses of the orchestrator's terminal
// (agentclient.TTY).
type terminalIO interface {
	io.ReadWriter
	Resize(ctx context.Context, rows, cols uint16) error
	Close() error
}

// usedTerminal notes use of the workspace (for the idle stop) on every
// read of output and write of input.
type usedTerminal struct {
	terminalIO
	note func()
}

func (t usedTerminal) Read(p []byte) (int, error) {
	n, err := t.terminalIO.Read(p)
	if n > 0 {
		t.note()
	}
	return n, err
}

func (t usedTerminal) Write(p []byte) (int, error) {
	t.note()
	return t.terminalIO.Write(p)
}

// webSocketOnly answers 404 Not Found to a request that is not a
// WebSocket upgrade: Starlette routes none to a WebSocket endpoint.
func webSocketOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !webSocketRequested(c.Request()) {
			return echo.ErrNotFound
		}
		return next(c)
	}
}

// webSocketRequested reports whether r asks for a WebSocket upgrade.
func webSocketRequested(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}

// terminal is GET /terminal/{id} (§3.21). Its route's middleware has
// checked, before the upgrade, that it is a WebSocket handshake
// (webSocketOnly) with a valid token (socketToken: a 403, as uvicorn
// answers a WebSocket refused before accept).
func (a *API) terminal(c echo.Context) error {
	r := c.Request()
	// No Origin check: the caller is the podex API, service to service,
	// authenticated by the token header above; browsers never connect
	// here (they reach the podex API, which holds the token), so there is
	// no ambient credential a cross-site page could borrow, and podex's
	// client sends no Origin.
	conn, err := websocket.Accept(c.Response(), r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil { // Accept has answered
		a.log.Debug("terminal upgrade failed", "error", err)
		return nil
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(terminalMaxMessage)

	ctx := r.Context() // ends when this handler returns (the connection is hijacked)
	ws, refused := a.terminalWorkspace(ctx, c.Param("id"))
	if refused != nil {
		_ = conn.Close(refused.code, refused.reason)
		return nil
	}
	if a.shuttingDown() {
		_ = conn.Close(socketShuttingDown.code, socketShuttingDown.reason)
		return nil
	}
	release, ok := a.streams.acquire(ws.ID, streamTerminal, a.d.Streams.Terminals)
	if !ok {
		end := terminalTooMany(a.d.Streams.Terminals)
		if a.shuttingDown() {
			end = socketShuttingDown
		}
		_ = conn.Close(end.code, end.reason)
		return nil
	}
	defer release()

	req := orchestrator.TerminalRequest{Session: c.QueryParam("session_id"), Shell: c.QueryParam("shell")}
	tty, err := a.d.Workspaces.OpenTerminal(ctx, ws, req)
	if err != nil {
		end := a.terminalOpenFailure(ws.ID, err)
		_ = conn.Close(end.code, end.reason)
		return nil
	}
	a.log.Debug("terminal opened", "workspace_id", ws.ID, "session", req.Session, "shell", req.Shell)
	how := a.serveTerminal(ctx, conn, usedTerminal{terminalIO: tty, note: func() { a.d.Workspaces.NoteActivity(ws.ID) }})
	a.log.Debug("terminal closed", "workspace_id", ws.ID, "session", req.Session, "end", how)
	return nil
}

// terminalWorkspace runs the checks of §3.21 after the accept, in the
// contract's order: id, record, status (after the status sync), container,
// server. refused is how to close when one fails.
func (a *API) terminalWorkspace(ctx context.Context, id string) (ws registry.Workspace, refused *socketClose) {
	if validateID(id) != nil {
		return ws, &socketInvalidID
	}
	ws, err := a.d.Workspaces.Get(ctx, id)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return ws, &socketNotFound
	} else if err != nil {
		a.log.Error("terminal: workspace lookup failed", "workspace_id", id, "error", err)
		return ws, &terminalStartFailed
	}
	synced, err := a.d.Workspaces.Sync(ctx, ws)
	switch {
	case errors.Is(err, orchestrator.ErrNotFound):
		return ws, &socketNotFound
	case err != nil:
		a.log.Warn("status sync failed; deciding on the record", "workspace_id", id, "error", err)
	default:
		ws = synced
	}
	switch {
	case ws.Status != fleet.StatusRunning:
		return ws, &socketNotRunning
	case ws.ContainerID == "":
		return ws, &terminalNoContainer
	case ws.ServerID == "":
		return ws, &socketNoServer
	}
	return ws, nil
}

// terminalEnd is how a session ended.
type terminalEnd int

const (
	endTerminal   terminalEnd = iota // the terminal's output ended (tmux session gone, shell exited)
	endClientLeft                    // the client closed or the connection broke
	endShutdown                      // the server is shutting down
	endStalled                       // the client did not take output, or a pong, in time
)

// serveTerminal relays between the client and the terminal until one of
// them ends or the server shuts down, closes both and says how it ended.
// Closing the terminal detaches the tmux client: the session lives on.
func (a *API) serveTerminal(ctx context.Context, conn *websocket.Conn, tty terminalIO) string {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	chunks := make(chan []byte)
	var outErr error // how the output ended; written before chunks is closed
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		outErr = readOutput(ctx, tty, chunks)
	}()
	clientLeft := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(clientLeft)
		a.terminalInput(conn, tty)
	}()
	stalled := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !keepAlive(ctx, conn) {
			close(stalled)
		}
	}()

	end := a.writeOutput(conn, chunks, clientLeft, stalled, time.Now)
	cancel()
	_ = tty.Close() // detaches tmux; unblocks the output's Read and the input's Write
	switch end {
	case endTerminal:
		if outErr == nil || errors.Is(outErr, io.EOF) {
			_ = conn.Close(terminalEnded.code, terminalEnded.reason)
			return "terminal ended"
		}
		a.log.Warn("terminal stream lost", "error", outErr)
		_ = conn.Close(socketNoServer.code, socketNoServer.reason)
		return "terminal lost: " + outErr.Error()
	case endShutdown:
		_ = conn.Close(socketShuttingDown.code, socketShuttingDown.reason)
		return "shutdown"
	case endStalled:
		_ = conn.CloseNow()
		return "client stalled"
	}
	_ = conn.CloseNow()
	return "client left"
}

// readOutput reads the terminal's output into out, one chunk per read,
// until the output ends (its error, io.EOF when the process exited) or ctx
// does (nil).
func readOutput(ctx context.Context, tty io.Reader, out chan<- []byte) error {
	buf := make([]byte, terminalReadChunk)
	for {
		n, err := tty.Read(buf)
		if n > 0 {
			select {
			case out <- bytes.Clone(buf[:n]):
			case <-ctx.Done():
				return nil
			}
		}
		if err != nil {
			return err
		}
	}
}

// writeOutput writes the terminal's output to the client in binary frames
// batched by outputBatcher, until the output ends (what is pending is
// written first), the client leaves or stalls, or the server shuts down.
// now is the clock.
func (a *API) writeOutput(conn *websocket.Conn, chunks <-chan []byte, clientLeft, stalled <-chan struct{}, now func() time.Time) terminalEnd {
	b := outputBatcher{interval: terminalFrameInterval, max: terminalMaxFrame}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due <-chan time.Time // set while a batch waits for its time
	flush := func() bool {
		if due != nil {
			timer.Stop()
			due = nil
		}
		for len(b.pending) > 0 {
			frame := b.take(now())
			// Not the session's context: its end would close the
			// connection before the close frame is sent.
			wctx, cancel := context.WithTimeout(context.Background(), terminalWriteTimeout)
			err := conn.Write(wctx, websocket.MessageBinary, frame)
			cancel()
			if err != nil {
				return false
			}
		}
		return true
	}
	for {
		select {
		case chunk, ok := <-chunks:
			if !ok {
				if !flush() {
					return endStalled
				}
				return endTerminal
			}
			t := now()
			at := b.add(chunk, t)
			switch {
			case !at.After(t):
				if !flush() {
					return endStalled
				}
			case due == nil:
				timer.Reset(at.Sub(t))
				due = timer.C
			}
		case <-due:
			due = nil
			if !flush() {
				return endStalled
			}
		case <-clientLeft:
			return endClientLeft
		case <-stalled:
			return endStalled
		case <-a.streams.closing:
			return endShutdown
		}
	}
}

// outputBatcher gathers terminal output into frames: output that comes
// when no frame went out within the last interval goes out at once (a
// keystroke's echo is never held back), output that follows a frame
// closely waits until interval after it, so that a flood leaves in one
// frame per interval instead of one per read; a frame holds at most max
// bytes, and a full one goes out at once. It only decides; the caller
// writes. Not safe for concurrent use.
type outputBatcher struct {
	interval time.Duration
	max      int
	pending  []byte
	last     time.Time // when the last frame went out; zero: none yet
}

// add queues output that arrived at now and returns when what is pending
// should go out: now, or a later time.
func (b *outputBatcher) add(p []byte, now time.Time) time.Time {
	b.pending = append(b.pending, p...)
	if due := b.last.Add(b.interval); len(b.pending) < b.max && now.Before(due) {
		return due
	}
	return now
}

// take removes the next frame (at most max bytes) from what is pending and
// notes that it goes out at now.
func (b *outputBatcher) take(now time.Time) []byte {
	n := min(len(b.pending), b.max)
	frame := b.pending[:n:n]
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	b.last = now
	return frame
}

// terminalInput passes the client's frames to the terminal until the
// connection or the terminal ends: text frames are keystrokes (UTF-8, as
// sent), binary frames raw input, except resizes (clientFrameKind). A
// message is streamed, never held whole.
func (a *API) terminalInput(conn *websocket.Conn, tty terminalIO) {
	var head [resizeFrameLen]byte
	for {
		// Not the session's context: its end would close the connection
		// before the close frame is sent; closing it ends this read.
		typ, r, err := conn.Reader(context.Background())
		if err != nil {
			return
		}
		n, err := io.ReadFull(r, head[:])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		switch kind, rows, cols := clientFrameKind(typ, head[:n]); kind {
		case frameResize:
			ctx, cancel := context.WithTimeout(context.Background(), terminalResizeTimeout)
			if err := tty.Resize(ctx, rows, cols); err != nil {
				a.log.Debug("terminal resize failed", "rows", rows, "cols", cols, "error", err)
			}
			cancel()
		case frameInput:
			if _, err := tty.Write(head[:n]); err != nil {
				return
			}
			if _, err := io.Copy(tty, r); err != nil {
				return
			}
		}
		if _, err := io.Copy(io.Discard, r); err != nil { // the rest of a resize or ignored frame
			return
		}
	}
}

// clientFrame is what a client message is.
type clientFrame int

const (
	frameInput   clientFrame = iota // keystrokes or raw input
	frameResize                     // 'r', rows u16 BE, cols u16 BE
	frameIgnored                    // a binary 'r' frame too short for a size
)

// resizeFrameLen is the length of a resize frame; longer ones are resizes
// too (the rest is ignored).
const resizeFrameLen = 5

// clientFrameKind classifies a client message by its type and its first
// bytes (up to resizeFrameLen): a binary message starting with 'r' is a
// resize when it has at least 5 bytes (rows, cols: bytes 1–4, big-endian)
// and ignored when shorter; anything else is input.
func clientFrameKind(typ websocket.MessageType, head []byte) (kind clientFrame, rows, cols uint16) {
	if typ != websocket.MessageBinary || len(head) == 0 || head[0] != 'r' {
		return frameInput, 0, 0
	}
	if len(head) < resizeFrameLen {
		return frameIgnored, 0, 0
	}
	return frameResize, binary.BigEndian.Uint16(head[1:3]), binary.BigEndian.Uint16(head[3:5])
}

// keepAlive pings the client every terminalPingInterval until ctx ends
// (true) or a pong does not come within terminalPingTimeout (false).
// Pongs are read by terminalInput's reads.
func keepAlive(ctx context.Context, conn *websocket.Conn) bool {
	t := time.NewTicker(terminalPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-t.C:
		}
		// Not ctx: its end would close the connection mid-close.
		pctx, cancel := context.WithTimeout(context.Background(), terminalPingTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			return ctx.Err() != nil
		}
	}
}

// shuttingDown reports whether the server is shutting down (Shutdown).
func (a *API) shuttingDown() bool {
	select {
	case <-a.streams.closing:
		return true
	default:
		return false
	}
}

// killTerminalSession is DELETE /terminal/{id}/session/{sid} (§3.21):
// token only, no ownership; always 200 with one of the contract's answers.
func (a *API) killTerminalSession(c echo.Context) error {
	ctx := c.Request().Context()
	id, sid := c.Param("id"), c.Param("sid")
	ws, err := a.d.Workspaces.Get(ctx, id)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return writeJSON(c, http.StatusOK, sessionWorkspaceNotFound)
	} else if err != nil {
		return a.fail(opLookup, err)
	}
	killed, err := a.d.Workspaces.KillTerminalSession(ctx, ws, sid)
	switch {
	case errors.Is(err, orchestrator.ErrServerUnavailable):
		return writeJSON(c, http.StatusOK, sessionServerUnavailable)
	case err != nil:
		a.log.Warn("terminal session kill failed", "workspace_id", id, "session", sid, "error", err)
	case killed:
		return writeJSON(c, http.StatusOK, sessionKilled(sid))
	}
	return writeJSON(c, http.StatusOK, sessionNotFound(sid))
}
