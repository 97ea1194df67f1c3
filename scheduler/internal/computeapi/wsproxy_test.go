package computeapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/orchestrator"
	"berth/shared/wire"
)

// wsEcho is the test app's WebSocket (/ws): it greets with what it saw
// ("path=… query=… proto=…"), then echoes every message with its type.
// A text message "close <code> <reason>" closes with that code; "send <n>"
// is answered with n binary bytes; "deaf" makes it stop reading.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"vite-hmr", "other"}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)
	ctx := r.Context()
	hello := fmt.Sprintf("path=%s query=%s proto=%s", r.URL.EscapedPath(), r.URL.RawQuery, conn.Subprotocol())
	if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		return
	}
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageText {
			if rest, ok := strings.CutPrefix(string(msg), "close "); ok {
				code, reason, _ := strings.Cut(rest, " ")
				n, _ := strconv.Atoi(code)
				conn.Close(websocket.StatusCode(n), reason)
				return
			}
			if string(msg) == "deaf" {
				<-ctx.Done()
				return
			}
			if n, ok := strings.CutPrefix(string(msg), "send "); ok {
				size, _ := strconv.Atoi(n)
				msg, typ = make([]byte, size), websocket.MessageBinary
			}
		}
		if err := conn.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// socketRig serves the proxy rig over real HTTP (a WebSocket needs a
// hijackable connection).
type socketRig struct {
	*proxyRig
	url string
}

func newSocketRig(t *testing.T, change func(*API)) *socketRig {
	t.Helper()
	p := newProxyRig(t, change)
	srv := httptest.NewServer(p.e)
	t.Cleanup(srv.Close)
	return &socketRig{proxyRig: p, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// dial opens path on the API with the token and subprotocols.
func (s *socketRig) dial(t *testing.T, ctx context.Context, path string, subprotocols ...string) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.Dial(ctx, s.url+path, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{headerServiceToken: {testToken}}, Subprotocols: subprotocols})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	t.Cleanup(func() { conn.CloseNow() })
	conn.SetReadLimit(64 << 20)
	return conn
}

// closed reads until conn closes and returns its close (closeOf).
func closed(t *testing.T, conn *websocket.Conn) websocket.CloseError {
	t.Helper()
	code, reason := closeOf(t, conn)
	return websocket.CloseError{Code: code, Reason: reason}
}

func read(t *testing.T, ctx context.Context, conn *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	typ, msg, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(msg)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Without a valid token the handshake is refused with a plain HTTP 403,
// before any upgrade or lookup; a request that is no upgrade is the
// framework's 404.
func TestSocketProxyNeedsToken(t *testing.T) {
	s := newSocketRig(t, nil)
	for name, h := range map[string]http.Header{"none": {}, "wrong": {headerServiceToken: {"nope"}},
		"wrong bearer": {"Authorization": {"Bearer nope"}}} {
		_, resp, err := websocket.Dial(testCtx(t), s.url+"/ws/ws1/3000", &websocket.DialOptions{HTTPHeader: h}) //nolint:bodyclose // Dial closes the handshake answer itself
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || resp.Header.Get("Upgrade") != "" {
			t.Errorf("%s token: got %v, %v; want a plain HTTP 403", name, resp, err)
		}
	}
	s.f.mu.Lock()
	if len(s.f.calls) != 0 {
		t.Errorf("calls before the token check: %v", s.f.calls)
	}
	s.f.mu.Unlock()
	checkJSON(t, s.send(req{method: http.MethodGet, path: "/ws/ws1/3000/x"}), http.StatusNotFound, detail("Not Found"))
	checkJSON(t, s.send(req{method: http.MethodGet, path: "/ws/ws1/vite"}), http.StatusNotFound, detail("Not Found"))

	bare := newSocketRig(t, func(a *API) { a.d.ServiceToken = "" })
	_, resp, err := websocket.Dial(testCtx(t), bare.url+"/ws/ws1/3000", &websocket.DialOptions{HTTPHeader: http.Header{headerServiceToken: {testToken}}}) //nolint:bodyclose // Dial closes the handshake answer itself
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("no token configured: got %v, %v; want 403", resp, err)
	}
}

// Every refusal is a close code after the accept (§3.22).
func TestSocketProxyRefusals(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes: the reason is cut on a rune boundary
	tests := []struct {
		name    string
		path    string
		dialErr error
		want    websocket.CloseError
	}{
		{"invalid id", "/ws/a.b/3000", nil, websocket.CloseError{Code: 1008, Reason: "Invalid workspace ID"}},
		{"unknown", "/ws/nope/3000", nil, websocket.CloseError{Code: 1008, Reason: "Workspace not found"}},
		{"stopped", "/ws/ws2/3000", nil, websocket.CloseError{Code: 1008, Reason: "Workspace is not running"}},
		{"no container", "/ws/ws3/3000/x", nil, websocket.CloseError{Code: 1008, Reason: "Workspace not available"}},
		{"port out of range", "/ws/ws1/70000", nil, websocket.CloseError{Code: 1008, Reason: "Invalid target URI"}},
		{"refused", "/ws/ws1/5173/x", &agentclient.Error{Status: 502, Code: wire.CodeUpstreamRefused},
			websocket.CloseError{Code: 1008, Reason: "Could not connect to port 5173"}},
		{"handshake", "/ws/ws1/3000", &agentclient.HandshakeError{Status: 404, Reason: "expected 101"},
			websocket.CloseError{Code: 1008, Reason: "Handshake failed"}},
		{"agent refused the target", "/ws/ws1/3000", &agentclient.Error{Status: 400, Code: wire.CodeBadRequest},
			websocket.CloseError{Code: 1008, Reason: "Invalid target URI"}},
		{"container stopped under the agent", "/ws/ws1/3000", &agentclient.Error{Status: 409, Code: wire.CodeNotRunning},
			websocket.CloseError{Code: 1008, Reason: "Workspace is not running"}},
		{"agent unreachable", "/ws/ws1/3000", fmt.Errorf("%w: %w", orchestrator.ErrServerUnavailable, agentclient.ErrUnreachable),
			websocket.CloseError{Code: 1011, Reason: "Workspace server not available"}},
		{"agent's cap", "/ws/ws1/3000", &agentclient.Error{Status: 429, Code: wire.CodeTooManyConnections},
			websocket.CloseError{Code: 1013, Reason: "Too many open connections to the workspace (BERTH_PROXY_MAX_CONNS on its server)"}},
		{"anything else, without its text", "/ws/ws1/3000", errors.New("boom " + long),
			websocket.CloseError{Code: 1011, Reason: "Proxy error: internal error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSocketRig(t, nil)
			s.app.dialErr = tt.dialErr
			ctx := testCtx(t)
			got := closed(t, s.dial(t, ctx, tt.path))
			if got != tt.want {
				t.Errorf("close: got %d %q, want %d %q", got.Code, got.Reason, tt.want.Code, tt.want.Reason)
			}
			if len(got.Reason) > maxCloseReason {
				t.Errorf("reason of %d bytes", len(got.Reason))
			}
		})
	}
}

// Frames go both ways with their types; the path goes to the app, the
// query does not; the client's first subprotocol is accepted and offered
// to the app.
func TestSocketProxyRelays(t *testing.T) {
	s := newSocketRig(t, nil)
	ctx := testCtx(t)
	conn := s.dial(t, ctx, "/ws/ws1/3000/ws?token=secret", "vite-hmr", "other")
	if conn.Subprotocol() != "vite-hmr" {
		t.Errorf("subprotocol: got %q, want vite-hmr", conn.Subprotocol())
	}
	if _, hello := read(t, ctx, conn); hello != "path=/ws query= proto=vite-hmr" {
		t.Errorf("the app saw %q, want path=/ws, no query, vite-hmr", hello)
	}
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<18) // 1 MiB: streamed in many frames
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{{websocket.MessageText, []byte("héllo")}, {websocket.MessageBinary, []byte{0, 1, 2, 0xff}},
		{websocket.MessageBinary, big}, {websocket.MessageText, []byte("")}} {
		if err := conn.Write(ctx, m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := conn.Read(ctx)
		if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
			t.Errorf("echo of %v (%d bytes): got %v (%d bytes), %v", m.typ, len(m.data), typ, len(got), err)
		}
	}
	if s.api.streams.count("ws1", socketKind) != 1 {
		t.Errorf("open sockets: got %d, want 1", s.api.streams.count("ws1", socketKind))
	}
	if n := s.f.activityOf("ws1"); n < 8 {
		t.Errorf("use of ws1 noted %d times, want once per message moved at least (idle stop)", n)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the slot released", func() bool { return s.api.streams.count("ws1", socketKind) == 0 })
}

// A close of either side reaches the other with its code and reason.
func TestSocketProxyPassesCloses(t *testing.T) {
	t.Run("the app closes", func(t *testing.T) {
		s := newSocketRig(t, nil)
		ctx := testCtx(t)
		conn := s.dial(t, ctx, "/ws/ws1/3000/ws")
		read(t, ctx, conn)
		conn.Write(ctx, websocket.MessageText, []byte("close 4001 see you"))
		if got := closed(t, conn); got != (websocket.CloseError{Code: 4001, Reason: "see you"}) {
			t.Errorf("client's close: got %d %q, want 4001 see you", got.Code, got.Reason)
		}
	})
	t.Run("the client closes", func(t *testing.T) {
		closes := make(chan websocket.CloseError, 1)
		s := newSocketRig(t, nil)
		s.app = newFakeApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			_, _, err = conn.Read(r.Context())
			var ce websocket.CloseError
			errors.As(err, &ce)
			closes <- ce
		}))
		s.f.app = s.app
		ctx := testCtx(t)
		conn := s.dial(t, ctx, "/ws/ws1/3000")
		conn.Close(4002, "bye")
		select {
		case got := <-closes:
			if got != (websocket.CloseError{Code: 4002, Reason: "bye"}) {
				t.Errorf("app's close: got %d %q, want 4002 bye", got.Code, got.Reason)
			}
		case <-ctx.Done():
			t.Fatal("the app saw no close")
		}
	})
}

// The per-workspace cap refuses with 1013; a slot frees when its socket
// closes.
func TestSocketProxyCap(t *testing.T) {
	s := newSocketRig(t, func(a *API) { a.d.Streams.Sockets = 1 })
	ctx := testCtx(t)
	first := s.dial(t, ctx, "/ws/ws1/3000/ws")
	read(t, ctx, first)
	got := closed(t, s.dial(t, ctx, "/ws/ws1/3000/ws"))
	if got.Code != websocket.StatusTryAgainLater || got.Reason != "Too many WebSockets open to this workspace (at most 1)" {
		t.Errorf("second socket: got %d %q, want 1013 naming the cap", got.Code, got.Reason)
	}
	first.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the slot released", func() bool { return s.api.streams.count("ws1", socketKind) == 0 })
	third := s.dial(t, ctx, "/ws/ws1/3000/ws")
	if _, hello := read(t, ctx, third); !strings.HasPrefix(hello, "path=/ws") {
		t.Errorf("third socket: got %q", hello)
	}
}

// The relay's bounds: idle, message size, a peer that stops reading, and
// shutdown.
func TestSocketProxyBounds(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		s := newSocketRig(t, func(a *API) {
			a.relay = relayLimits{ReadLimit: 1 << 20, WriteTimeout: time.Second, IdleTimeout: 300 * time.Millisecond, DialTimeout: time.Second}
		})
		ctx := testCtx(t)
		conn := s.dial(t, ctx, "/ws/ws1/3000/ws")
		start := time.Now()
		if got := closed(t, conn); got != (websocket.CloseError{Code: 1001, Reason: "Idle timeout"}) {
			t.Errorf("got %d %q, want 1001 Idle timeout", got.Code, got.Reason)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("closed after %s, before the idle timeout", d)
		}
	})
	t.Run("message too big", func(t *testing.T) {
		s := newSocketRig(t, func(a *API) {
			a.relay = relayLimits{ReadLimit: 1 << 10, WriteTimeout: time.Second, IdleTimeout: time.Minute, DialTimeout: time.Second}
		})
		ctx := testCtx(t)
		conn := s.dial(t, ctx, "/ws/ws1/3000/ws")
		read(t, ctx, conn)
		conn.Write(ctx, websocket.MessageBinary, make([]byte, 2<<10))
		if got := closed(t, conn); got.Code != websocket.StatusMessageTooBig {
			t.Errorf("client's message: got %d %q, want 1009", got.Code, got.Reason)
		}
		conn = s.dial(t, ctx, "/ws/ws1/3000/ws")
		read(t, ctx, conn)
		conn.Write(ctx, websocket.MessageText, []byte("send 2048"))
		if got := closed(t, conn); got != (websocket.CloseError{Code: websocket.StatusMessageTooBig, Reason: "Message too big"}) {
			t.Errorf("app's message: got %d %q, want 1009 Message too big", got.Code, got.Reason)
		}
	})
	t.Run("the app stops reading", func(t *testing.T) {
		s := newSocketRig(t, func(a *API) {
			a.relay = relayLimits{ReadLimit: 1 << 20, WriteTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute, DialTimeout: time.Second}
		})
		ctx := testCtx(t)
		conn := s.dial(t, ctx, "/ws/ws1/3000/ws")
		read(t, ctx, conn)
		conn.Write(ctx, websocket.MessageText, []byte("deaf"))
		ended := make(chan error, 1)
		go func() {
			for {
				if _, _, err := conn.Read(ctx); err != nil {
					ended <- err
					return
				}
			}
		}()
		chunk := make([]byte, 1<<20)
		for i := 0; i < 200; i++ { // far more than the socket buffers hold
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := conn.Write(wctx, websocket.MessageBinary, chunk)
			cancel()
			if err != nil {
				break
			}
		}
		select {
		case err := <-ended:
			var got websocket.CloseError
			if !errors.As(err, &got) || got != socketStalledClose() {
				t.Errorf("got %v, want close %d %q", err, socketStalled.code, socketStalled.reason)
			}
		case <-ctx.Done():
			t.Fatal("the client was never closed")
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		s := newSocketRig(t, nil)
		ctx := testCtx(t)
		conn := s.dial(t, ctx, "/ws/ws1/3000/ws")
		read(t, ctx, conn)
		done := make(chan struct{})
		go func() { s.api.Shutdown(); close(done) }()
		if got := closed(t, conn); got != (websocket.CloseError{Code: 1001, Reason: "Server is shutting down"}) {
			t.Errorf("got %d %q, want 1001 Server is shutting down", got.Code, got.Reason)
		}
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("Shutdown did not return")
		}
		got := closed(t, s.dial(t, ctx, "/ws/ws1/3000/ws"))
		if got != (websocket.CloseError{Code: 1001, Reason: "Server is shutting down"}) {
			t.Errorf("after shutdown: got %d %q, want 1001", got.Code, got.Reason)
		}
	})
}

func socketStalledClose() websocket.CloseError {
	return websocket.CloseError{Code: socketStalled.code, Reason: socketStalled.reason}
}
