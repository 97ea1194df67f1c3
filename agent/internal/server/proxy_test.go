package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/agent/internal/server"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// upstream is an app "in the container": a test server on 127.0.0.1,
// which is where the fake's Address points.
func upstream(t *testing.T, h http.Handler) (port int) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, err = strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func proxyPath(id string, port int, rest string) string {
	return ctrPath(id, fmt.Sprintf("%s/%d%s", wire.SuffixProxy, port, rest))
}

// noRedirects is a client that hands back redirects instead of following
// them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Requests reach the app with their method, path, query and body, and the
// app's answer comes back as it gave it (status, headers, body), redirects
// included.
func TestProxyRequests(t *testing.T) {
	r := newRig(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		switch req.URL.Path {
		case "/moved":
			http.Redirect(w, req, "/elsewhere", http.StatusFound)
			return
		case "/hints":
			w.Header().Set("Link", "</app.js>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("X-App", "yes")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s %s %s", req.Method, req.URL.EscapedPath(), req.URL.RawQuery, body)
	}))
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string
	}{
		{"get with path and query", http.MethodGet, "/a/b%20c/?x=1&y=%2F", "", http.StatusTeapot, "GET /a/b%20c/ x=1&y=%2F "},
		{"no path", http.MethodGet, "", "", http.StatusTeapot, "GET /  "},
		{"post", http.MethodPost, "/api", "hello", http.StatusTeapot, "POST /api  hello"},
		{"put", http.MethodPut, "/api", "x", http.StatusTeapot, "PUT /api  x"},
		{"patch", http.MethodPatch, "/api", "y", http.StatusTeapot, "PATCH /api  y"},
		{"delete", http.MethodDelete, "/api/1", "", http.StatusTeapot, "DELETE /api/1  "},
		{"options", http.MethodOptions, "/api", "", http.StatusTeapot, "OPTIONS /api  "},
		{"head", http.MethodHead, "/api", "", http.StatusTeapot, ""},
		{"redirect not followed", http.MethodGet, "/moved", "", http.StatusFound, ""},
		{"early hints, then the answer", http.MethodGet, "/hints", "", http.StatusCreated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, r.url+proxyPath(c.ID, port, tt.path), strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
			if resp.Header.Get(wire.HeaderError) != "" {
				t.Errorf("an app's answer carries %s", wire.HeaderError)
			}
			if tt.wantStatus == http.StatusTeapot && resp.Header.Get("X-App") != "yes" {
				t.Errorf("the app's header is missing: %v", resp.Header)
			}
			if tt.wantStatus == http.StatusFound && resp.Header.Get("Location") != "/elsewhere" {
				t.Errorf("Location: got %q, want /elsewhere", resp.Header.Get("Location"))
			}
		})
	}
	t.Run("methods outside the preview's are refused", func(t *testing.T) {
		for _, m := range []string{http.MethodTrace, "PROPFIND"} {
			if a := r.do(m, proxyPath(c.ID, port, "/"), nil); a.status != http.StatusMethodNotAllowed && a.status != http.StatusNotFound {
				t.Errorf("%s: status %d, want 405", m, a.status)
			}
		}
	})
}

// The internal headers never reach the app, nor hop-by-hop ones; the
// app's own X-Berth-* answer headers never reach the scheduler; the rest
// (Authorization included, and the forwarding headers the scheduler set)
// passes.
func TestProxyHeaders(t *testing.T) {
	r := newRig(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, Epoch: 3})
	got := make(chan http.Header, 1)
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got <- req.Header.Clone()
		w.Header().Set("X-Berth-Error", "forged")
		w.Header().Set("X-Berth-Epoch", "99")
		w.Header().Set("X-Kept", "1")
	}))
	a := r.do(http.MethodGet, proxyPath(c.ID, port, "/"), nil,
		wire.HeaderServiceToken, "secret",
		"X-User-Id", "user-1",
		wire.HeaderEpoch, "3",
		"X-Berth-Whatever", "internal",
		"Authorization", "Bearer app-token",
		"X-Forwarded-Host", "preview.example.com",
		"X-Forwarded-Proto", "https",
		"Connection", "X-Hop",
		"X-Hop", "hop",
		"Accept-Encoding", "gzip",
		"X-Custom", "kept",
	)
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	h := <-got
	for _, name := range []string{wire.HeaderServiceToken, wire.HeaderUserID, wire.HeaderEpoch, "X-Berth-Whatever", "X-Hop"} {
		if v := h.Values(name); len(v) != 0 {
			t.Errorf("the app got %s: %q", name, v)
		}
	}
	want := map[string]string{"Authorization": "Bearer app-token", "X-Forwarded-Host": "preview.example.com",
		"X-Forwarded-Proto": "https", "Accept-Encoding": "gzip", "X-Custom": "kept"}
	for name, v := range want {
		if h.Get(name) != v {
			t.Errorf("the app got %s %q, want %q", name, h.Get(name), v)
		}
	}
	if v := h.Get("X-Forwarded-For"); v != "" {
		t.Errorf("the agent added X-Forwarded-For %q; only the scheduler knows the user's address", v)
	}
	for _, name := range []string{"X-Berth-Error", "X-Berth-Epoch"} {
		if v := a.header.Values(name); len(v) != 0 {
			t.Errorf("the app's %s reached the scheduler: %q", name, v)
		}
	}
	if a.header.Get("X-Kept") != "1" {
		t.Errorf("the app's own header is missing: %v", a.header)
	}
}

// Bodies stream both ways: the app sees the first part of the request
// before the rest is written, and the scheduler the first part of the
// answer before the app finishes it.
func TestProxyStreamsBothWays(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		sc := bufio.NewScanner(req.Body)
		for sc.Scan() { // answer each line as it comes
			fmt.Fprintf(w, "got %s\n", sc.Text())
			http.NewResponseController(w).Flush()
		}
	}))
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+proxyPath(c.ID, port, "/upload"), pr)
	if err != nil {
		t.Fatal(err)
	}
	respc := make(chan *http.Response, 1)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the test once received
		if err != nil {
			errc <- err
			return
		}
		respc <- resp
	}()
	if _, err := io.WriteString(pw, "one\n"); err != nil {
		t.Fatal(err)
	}
	var resp *http.Response
	select {
	case resp = <-respc:
	case err := <-errc:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no answer while the request body is still open")
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for _, line := range []string{"one", "two"} {
		if line == "two" {
			if _, err := io.WriteString(pw, "two\n"); err != nil {
				t.Fatal(err)
			}
		}
		got, err := br.ReadString('\n')
		if err != nil || got != "got "+line+"\n" {
			t.Fatalf("got %q, %v, want %q while the request is still open", got, err, "got "+line+"\n")
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the request ended: got %q, %v, want the end of the answer", rest, err)
	}
}

// Server-sent events are flushed as the app writes them.
func TestProxySSE(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-req.Context().Done() // the stream stays open
	}))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+proxyPath(c.ID, port, "/events"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Errorf("got %q, %v, want the first event while the stream is open", line, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type: got %q", ct)
	}
}

// Failures to reach the app are the agent's own JSON errors, each with
// its code, and marked with X-Berth-Error.
func TestProxyFailures(t *testing.T) {
	r := newRigWith(t, server.StreamConfig{ProxyResponseHeaderTimeout: 200 * time.Millisecond})
	running := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, Epoch: 2})
	stopped := r.create(wire.CreateContainerRequest{Name: "stopped", Image: "img"})
	slow := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-req.Context().Done():
		}
	}))
	closed := testutil.FreePort(t) // nothing listens there
	tests := []struct {
		name       string
		path       string
		header     []string
		setup      func()
		wantStatus int
		wantCode   string
	}{
		{"connection refused", proxyPath(running.ID, closed, "/"), nil, nil, http.StatusBadGateway, wire.CodeUpstreamRefused},
		{"no answer in time", proxyPath(running.ID, slow, "/"), nil, nil, http.StatusGatewayTimeout, wire.CodeUpstreamTimeout},
		{"stopped container", proxyPath(stopped.ID, slow, "/"), nil, nil, http.StatusConflict, wire.CodeNotRunning},
		{"container without an address", proxyPath(running.ID, slow, "/"), nil, func() { r.fake.SetAddress("") }, http.StatusConflict, wire.CodeNotRunning},
		{"missing container", proxyPath("nope", slow, "/"), nil, nil, http.StatusNotFound, wire.CodeNotFound},
		{"stale epoch", proxyPath(running.ID, slow, "/"), []string{wire.HeaderEpoch, "1"}, nil, http.StatusConflict, wire.CodeStaleEpoch},
		{"port 0", ctrPath(running.ID, wire.SuffixProxy+"/0/"), nil, nil, http.StatusBadRequest, wire.CodeBadRequest},
		{"port 65536", ctrPath(running.ID, wire.SuffixProxy+"/65536/"), nil, nil, http.StatusBadRequest, wire.CodeBadRequest},
		{"port not a number", ctrPath(running.ID, wire.SuffixProxy+"/http/"), nil, nil, http.StatusBadRequest, wire.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.fake.SetAddress("127.0.0.1")
			if tt.setup != nil {
				tt.setup()
			}
			a := r.do(http.MethodGet, tt.path, nil, tt.header...)
			if a.status != tt.wantStatus {
				t.Errorf("status: got %d (%s), want %d", a.status, a.body, tt.wantStatus)
			}
			if got := a.wireError(t).Code; got != tt.wantCode {
				t.Errorf("code: got %q, want %q", got, tt.wantCode)
			}
			if got := a.header.Get(wire.HeaderError); got != tt.wantCode {
				t.Errorf("%s: got %q, want %q", wire.HeaderError, got, tt.wantCode)
			}
		})
	}
}

// Past the cap of open requests per container the agent answers 429, and
// takes requests again once some end.
func TestProxyConnectionCap(t *testing.T) {
	r := newRigWith(t, server.StreamConfig{ProxyMaxConns: 2})
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	release := make(chan struct{})
	var inFlight sync.WaitGroup
	inFlight.Add(2)
	port := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/hold" {
			inFlight.Done()
			<-release
		}
	}))
	var held sync.WaitGroup
	for range 2 {
		held.Add(1)
		go func() {
			defer held.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+proxyPath(c.ID, port, "/hold"), nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	inFlight.Wait()
	a := r.do(http.MethodGet, proxyPath(c.ID, port, "/"), nil)
	if a.status != http.StatusTooManyRequests || a.wireError(t).Code != wire.CodeTooManyConnections {
		t.Errorf("third request: got %d %s, want 429 %s", a.status, a.body, wire.CodeTooManyConnections)
	}
	close(release)
	held.Wait()
	if a := r.do(http.MethodGet, proxyPath(c.ID, port, "/"), nil); a.status != http.StatusOK {
		t.Errorf("after the others ended: got %d %s, want 200", a.status, a.body)
	}
}

// wsEcho is an app's WebSocket that echoes every message, offering the
// "echo" subprotocol.
func wsEcho(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{"echo"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, p, err := c.Read(req.Context())
			if err != nil {
				return
			}
			if err := c.Write(req.Context(), typ, p); err != nil {
				return
			}
		}
	})
}

// A WebSocket upgrade passes through: the subprotocol is negotiated with
// the app, and text and binary messages flow both ways.
func TestProxyWebSocket(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	port := upstream(t, wsEcho(t))
	ws, resp, err := websocket.Dial(ctx, r.url+proxyPath(c.ID, port, "/socket"), &websocket.DialOptions{Subprotocols: []string{"echo"}}) //nolint:bodyclose // Dial closes the handshake answer itself
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer ws.CloseNow()
	if ws.Subprotocol() != "echo" {
		t.Errorf("subprotocol: got %q, want echo", ws.Subprotocol())
	}
	for _, m := range []struct {
		typ websocket.MessageType
		p   string
	}{{websocket.MessageText, "hello"}, {websocket.MessageBinary, "\x00\x01\x02"}} {
		if err := ws.Write(ctx, m.typ, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		typ, p, err := ws.Read(ctx)
		if err != nil || typ != m.typ || string(p) != m.p {
			t.Errorf("echo: got %v %q %v, want %v %q", typ, p, err, m.typ, m.p)
		}
	}
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

// A proxied connection on which nothing moves for the idle timeout is
// closed; one in use is not.
func TestProxyIdleTimeout(t *testing.T) {
	// Wide margins: the busy connection's traffic must never pause for an
	// idle period, even on a loaded machine (-race, parallel packages).
	const idle = time.Second
	r := newRigWith(t, server.StreamConfig{ProxyIdleTimeout: idle})
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	port := upstream(t, wsEcho(t))
	dial := func() *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, r.url+proxyPath(c.ID, port, "/"), nil) //nolint:bodyclose // Dial closes the handshake answer itself
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	busy, quiet := dial(), dial()
	for range 30 { // 3 idle periods of traffic
		time.Sleep(idle / 10)
		if err := busy.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatalf("busy connection: write: %v", err)
		}
		if _, _, err := busy.Read(ctx); err != nil {
			t.Fatalf("busy connection: read: %v", err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _, err := quiet.Read(rctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("quiet connection: got %v, want it closed after %v idle", err, idle)
	}
}

// The agent's metrics count open streams by kind.
func TestProxyStreamsGauge(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	port := upstream(t, wsEcho(t))
	ws, _, err := websocket.Dial(ctx, r.url+proxyPath(c.ID, port, "/"), nil) //nolint:bodyclose // Dial closes the handshake answer itself
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	m := r.do(http.MethodGet, "/metrics", nil)
	if want := `berth_agent_streams_open{kind="proxy"} 1`; !strings.Contains(string(m.body), want) {
		t.Errorf("metrics lack %q", want)
	}
}
