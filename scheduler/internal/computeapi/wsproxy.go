package computeapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// The WebSocket proxy (§3.22): /ws/{id}/{port}[/{path}] relays a client's
// WebSocket to an app's in the workspace's container (a dev server's
// hot-reload socket, mostly), through the agent of the workspace's server
// (orchestrator DialApp, agentclient.Client.DialWebSocket) over mTLS.
//
// The service token is checked before the upgrade: without a valid one the
// handshake is refused with a plain HTTP 403 (socketToken). Then, as the contract
// has it, the socket is accepted first and every later failure is a close
// code: the id, the record, its stored status and host (1008), this
// scheduler's per-workspace cap (Deps.Streams.Sockets, 1013), then the
// dial: refused 1008 "Could not connect to port <p>", a handshake the app
// refused 1008 "Handshake failed", a port outside 1–65535 1008 "Invalid
// target URI", anything else 1011 with the error (errors.go,
// socketFailure). The query string is not forwarded (contract); the path
// is, with its escaping.
//
// Subprotocols (the contract says nothing; Python negotiated none, which
// breaks Vite's HMR client, as it insists on "vite-hmr"): the client's
// first requested subprotocol is accepted, and the app is offered exactly
// that one. An app that picks none still gets the relay: it speaks its
// protocol whatever the header says.
//
// The relay copies each message with its type (text or binary), streamed
// frame by frame, so no message is ever held whole; it is bounded by
// relayLimits: a message larger than ReadLimit closes both sides with 1009,
// a write that a peer does not take for WriteTimeout ends the relay (the
// stalled side is dropped, the other closed with 1011), and IdleTimeout
// without a message either way closes both with 1001 "Idle timeout". When
// either side closes, the other is closed with the same code and reason (a
// close without a status is passed on as one); a side that vanishes
// without a close gets the other closed with 1001. On shutdown both sides
// are closed with 1001 "Server is shutting down".

// relayLimits bound one proxied WebSocket.
type relayLimits struct {
	ReadLimit    int64         // the largest message either side may send
	WriteTimeout time.Duration // how long a write may wait for a peer that does not read
	IdleTimeout  time.Duration // no message either way for this long: both closed
	DialTimeout  time.Duration // the upstream handshake, through the agent
}

// defaultRelayLimits: 16 MiB per message (source maps and HMR payloads of
// large bundles stay far below it; the library's default, 32 KiB, would
// not); 30 s writes, the agent's own write timeout; 1 h idle, the agent's
// proxy idle timeout (a dev server's hot-reload socket may be quiet for
// long, and its client reloads the page when the socket breaks; pings do
// not count, dead peers are found by TCP keep-alive); 30 s to dial, the
// preview proxy's timeout.
var defaultRelayLimits = relayLimits{ReadLimit: 16 << 20, WriteTimeout: 30 * time.Second, IdleTimeout: time.Hour,
	DialTimeout: 30 * time.Second}

// socketKind names the proxied WebSockets in the per-workspace counts.
const socketKind = "socket"

// socketToken checks the service token of a WebSocket handshake, before
// the upgrade: a failure is a plain 403, uvicorn's answer to a WebSocket
// refused before accept (its detail could not reach a WebSocket client
// anyway). Routes put webSocketOnly before it: a request that is no
// upgrade is not routed to a WebSocket endpoint by Starlette (404).
func (a *API) socketToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.checkToken(c.Request()) != nil {
			return c.NoContent(http.StatusForbidden)
		}
		return next(c)
	}
}

// socketProxy is /ws/{id}/{port} and /ws/{id}/{port}/{path}.
func (a *API) socketProxy(c echo.Context) error {
	r := c.Request()
	client, err := websocket.Accept(c.Response(), r, &websocket.AcceptOptions{
		Subprotocols: requestedSubprotocols(r),
		// The service token authenticates the caller; an Origin check
		// guards cookie-authenticated sockets, which this is not.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		a.log.Debug("websocket proxy: handshake failed", "error", err)
		return nil // Accept has answered
	}
	defer func() { _ = client.CloseNow() }() // after the close handshake, a no-op

	lim := a.relayLimits()
	id, port := c.Param("id"), routePort(c)
	ws, refused := a.socketTarget(r.Context(), id)
	if refused != nil {
		a.closeSocket(client, *refused)
		return nil
	}
	release, ok := a.streams.acquire(ws.ID, socketKind, a.d.Streams.Sockets)
	if !ok {
		a.closeSocket(client, a.refusal(socketTooMany(a.d.Streams.Sockets)))
		return nil
	}
	defer release()
	if !validPort(port) {
		a.closeSocket(client, socketFailure(port, errPortOutOfRange))
		return nil
	}

	dctx, cancel := context.WithTimeout(r.Context(), lim.DialTimeout)
	stop := a.onShutdown(cancel)
	var offer []string
	if p := client.Subprotocol(); p != "" {
		offer = []string{p}
	}
	app, err := a.d.Workspaces.DialApp(dctx, ws, port, appPath(r, 4), offer)
	stop()
	cancel()
	if err != nil {
		a.log.Debug("websocket proxy: dial failed", "workspace_id", id, "port", port, "error", err)
		a.closeSocket(client, a.refusal(socketFailure(port, err)))
		return nil
	}
	defer func() { _ = app.CloseNow() }()
	a.relaySocket(client, app, lim, func() { a.d.Workspaces.NoteActivity(ws.ID) })
	return nil
}

// relayLimits are the API's, defaults for zero.
func (a *API) relayLimits() relayLimits {
	if a.relay == (relayLimits{}) {
		return defaultRelayLimits
	}
	return a.relay
}

// socketTarget runs the checks of §3.22 before anything is dialled: the
// id, the record, its stored status (no sync) and its host. A refusal is
// the close to answer with.
func (a *API) socketTarget(ctx context.Context, id string) (registry.Workspace, *socketClose) {
	if validateID(id) != nil {
		return registry.Workspace{}, &socketInvalidID
	}
	ws, err := a.d.Workspaces.Get(ctx, id)
	if err == nil {
		err = orchestrator.CheckAppTarget(ws)
	}
	if err != nil {
		if !errors.Is(err, orchestrator.ErrNotFound) && !errors.Is(err, orchestrator.ErrNotRunning) && !errors.Is(err, orchestrator.ErrNoContainer) {
			a.log.Error("websocket proxy: workspace lookup failed", "workspace_id", id, "error", err)
		}
		refusal := socketFailure(0, err)
		return registry.Workspace{}, &refusal
	}
	return ws, nil
}

// refusal is why, unless the server is shutting down, which wins.
func (a *API) refusal(why socketClose) socketClose {
	if a.shuttingDown() {
		return socketShuttingDown
	}
	return why
}

// onShutdown calls fn when the server starts shutting down, until stop is
// called.
func (a *API) onShutdown(fn func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-a.streams.closing:
			fn()
		case <-done:
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// closeSocket closes conn with why (the close handshake waits up to a few
// seconds for the peer).
func (a *API) closeSocket(conn *websocket.Conn, why socketClose) {
	if err := conn.Close(why.code, closeReason(why.reason)); err != nil {
		a.log.Debug("websocket proxy: close", "code", int(why.code), "error", err)
	}
}

// closeBoth closes both sockets with why, at once.
func (a *API) closeBoth(client, app *websocket.Conn, why socketClose) {
	var wg sync.WaitGroup
	for _, conn := range []*websocket.Conn{client, app} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.closeSocket(conn, why)
		}()
	}
	wg.Wait()
}

// requestedSubprotocols lists the subprotocols the client asked for, in
// its order of preference.
func requestedSubprotocols(r *http.Request) []string {
	var out []string
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(line, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// side names the two ends of a relay.
type side int

const (
	clientSide side = iota
	appSide
)

func (s side) other() side { return 1 - s }

// relay is one proxied WebSocket: the two connections and the state their
// pumps share.
type relay struct {
	conns   [2]*websocket.Conn // by side
	lim     relayLimits
	last    atomic.Int64 // unix nanos of the last message moved, either way
	stalled atomic.Int32 // 1 + the side that stopped reading; 0 while none has
	used    func()       // notes use of the workspace (idle stop); nil = none
}

// touch records that a message moved: for the relay's own idle timeout,
// and as use of the workspace.
func (r *relay) touch() {
	r.last.Store(time.Now().UnixNano())
	if r.used != nil {
		r.used()
	}
}

// pumpEnd is how one direction of a relay ended.
type pumpEnd struct {
	from   side  // the side it read from
	read   bool  // reading from that side failed (otherwise writing to the other did)
	err    error // the failure: a websocket.CloseError when the side closed
	tooBig bool  // the message read was past the read limit
}

// relaySocket copies messages both ways until either side ends, then ends
// the other as described at the top of the file.
func (a *API) relaySocket(client, app *websocket.Conn, lim relayLimits, used func()) {
	r := &relay{conns: [2]*websocket.Conn{clientSide: client, appSide: app}, lim: lim, used: used}
	client.SetReadLimit(lim.ReadLimit)
	app.SetReadLimit(lim.ReadLimit)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.touch()
	ends := make(chan pumpEnd, 2)
	go func() { ends <- r.pump(ctx, clientSide) }()
	go func() { ends <- r.pump(ctx, appSide) }()

	tick := time.NewTicker(max(10*time.Millisecond, min(lim.IdleTimeout/4, time.Minute)))
	defer tick.Stop()
	var first pumpEnd
	for waiting := true; waiting; {
		select {
		case first = <-ends:
			waiting = false
		case <-a.streams.closing:
			a.closeBoth(client, app, socketShuttingDown)
			<-ends
			<-ends
			return
		case <-tick.C:
			if time.Since(time.Unix(0, r.last.Load())) >= lim.IdleTimeout {
				a.closeBoth(client, app, socketIdle)
				<-ends
				<-ends
				return
			}
		}
	}
	if s := r.stalled.Load(); s != 0 {
		// A side stopped reading and was dropped (both pumps end on it,
		// in either order): the other side is told.
		stuck := side(s - 1)
		a.closeSocket(r.conns[stuck.other()], socketStalled)
		<-ends
		a.log.Debug("websocket proxy: relay ended", "stalled", stuck)
		return
	}
	if first.read {
		// first.from ended: pass its end on to the other side.
		a.closeSocket(r.conns[first.from.other()], endOf(first))
		<-ends
		a.log.Debug("websocket proxy: relay ended", "by", first.from, "error", first.err)
		return
	}
	// Writing to the other side failed: it is gone. The pump reading from
	// it says how it ended (a close frame it sent wins).
	gone := first.from.other()
	_ = r.conns[gone].CloseNow()
	second := <-ends
	why := socketClose{websocket.StatusGoingAway, goneReason(gone)}
	if second.read {
		why = endOf(second)
	}
	a.closeSocket(r.conns[first.from], why)
	a.log.Debug("websocket proxy: relay ended", "by", gone, "error", first.err)
}

// endOf is the close that passes a read side's end on: its own close code
// and reason (none stays none), 1009 for a message past the read limit,
// 1001 when it vanished without a close.
func endOf(e pumpEnd) socketClose {
	var ce websocket.CloseError
	switch {
	case errors.As(e.err, &ce):
		return socketClose{ce.Code, ce.Reason}
	case e.tooBig:
		return socketClose{websocket.StatusMessageTooBig, "Message too big"}
	}
	return socketClose{websocket.StatusGoingAway, goneReason(e.from)}
}

func goneReason(s side) string {
	if s == clientSide {
		return "Client went away"
	}
	return "Connection to the app was lost"
}

// pump copies messages from side from to the other, each with its type,
// frame by frame through a 32 KiB buffer, until reading or writing fails.
// A write that blocks for lim.WriteTimeout marks the other side stalled
// and drops it.
func (r *relay) pump(ctx context.Context, from side) pumpEnd {
	src, dst := r.conns[from], r.conns[from.other()]
	buf := make([]byte, 32<<10)
	watchdog := time.AfterFunc(time.Hour, func() {
		r.stalled.CompareAndSwap(0, int32(from.other())+1)
		_ = dst.CloseNow()
	})
	watchdog.Stop()
	defer watchdog.Stop()
	guard := func(write func() error) error {
		watchdog.Reset(r.lim.WriteTimeout)
		err := write()
		watchdog.Stop()
		return err
	}
	for {
		typ, rd, err := src.Reader(ctx)
		if err != nil {
			return pumpEnd{from: from, read: true, err: err}
		}
		r.touch()
		var w io.WriteCloser
		if err := guard(func() (err error) { w, err = dst.Writer(ctx, typ); return err }); err != nil {
			return pumpEnd{from: from, err: err}
		}
		var n int64
		for {
			m, rerr := rd.Read(buf)
			n += int64(m)
			if m > 0 {
				if err := guard(func() error { _, err := w.Write(buf[:m]); return err }); err != nil {
					return pumpEnd{from: from, err: err}
				}
				r.touch()
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return pumpEnd{from: from, read: true, err: rerr, tooBig: n >= r.lim.ReadLimit}
			}
		}
		if err := guard(w.Close); err != nil {
			return pumpEnd{from: from, err: err}
		}
	}
}
