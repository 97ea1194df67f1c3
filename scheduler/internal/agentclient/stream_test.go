package agentclient_test

// These tests drive the real agent API (agent/agenttest: the in-memory
// Docker) over real mTLS with this package's stream calls: TTY, Proxy and
// DialWebSocket.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// streamRig is an agent, the scheduler's client of it, and one running
// container created for epoch 3.
type streamRig struct {
	agent  *agenttest.Agent
	pki    *testutil.PKI
	dialer *agentclient.Dialer
	client *agentclient.Client
	ctr    wire.Container
}

func newStreamRig(t *testing.T, streams agenttest.StreamConfig) *streamRig {
	t.Helper()
	pki := testutil.NewPKI(t)
	a := agenttest.StartWith(t, pki, "ws-1", streams)
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	d, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Client("ws-1", a.Addr())
	ctr, err := c.Create(streamCtx(t), wire.CreateContainerRequest{Name: "workspace-w1", Image: "berth/workspace:dev",
		Start: true, WorkspaceID: "w1", Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &streamRig{agent: a, pki: pki, dialer: d, client: c, ctr: ctr}
}

func streamCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readTTYUntil reads r until what it read holds want.
func readTTYUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("read %q, want %q: %v", got.String(), want, err)
		}
	}
	return got.String()
}

// app serves h as a container's app on 127.0.0.1 (where agenttest's proxy
// reaches every container) and returns its port.
func serveApp(t *testing.T, h http.Handler) int {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestStreamTTY(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{})
	ctx := streamCtx(t)

	t.Run("input echoed, resize delivered, close ends the session", func(t *testing.T) {
		tty, err := r.client.TTY(ctx, r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}, User: "dev", Rows: 24, Cols: 80})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		if _, err := io.WriteString(tty, "echo hi\r"); err != nil {
			t.Fatal(err)
		}
		readTTYUntil(t, tty, "echo hi\r")
		big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB: several input messages
		go func() { _, _ = io.WriteString(tty, big) }()
		readTTYUntil(t, tty, big[len(big)-64:])

		if err := tty.Resize(ctx, 40, 120); err != nil {
			t.Fatal(err)
		}
		term := r.agent.Terminals()[0]
		select {
		case got := <-term.Resized():
			if want := (agenttest.TermSize{Rows: 40, Cols: 120}); got != want {
				t.Errorf("resize: got %v, want %v", got, want)
			}
		case <-ctx.Done():
			t.Fatal("the resize never reached the terminal")
		}
		if err := tty.Resize(ctx, 0, 80); !errors.Is(err, agentclient.ErrBadRequest) {
			t.Errorf("resize to 0 rows: got %v, want ErrBadRequest", err)
		}
		if err := tty.Close(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "the agent closed the terminal", term.Closed)
		if _, err := tty.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: got %v, want net.ErrClosed", err)
		}
		if _, exited := tty.ExitCode(); exited {
			t.Error("ExitCode after Close: exited, want not")
		}
	})

	t.Run("the exit code comes with io.EOF", func(t *testing.T) {
		r.agent.SetTTY(func(_ context.Context, _ wire.Container, req wire.TTYRequest, term *agenttest.Terminal) int {
			_, _ = io.WriteString(term, "bye "+req.User)
			return 7
		})
		defer r.agent.SetTTY(nil)
		tty, err := r.client.TTY(ctx, r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}, User: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		out, err := io.ReadAll(tty)
		if err != nil || string(out) != "bye dev" {
			t.Errorf("output: got %q, %v, want \"bye dev\" then io.EOF", out, err)
		}
		if code, exited := tty.ExitCode(); !exited || code != 7 {
			t.Errorf("ExitCode: got %d %v, want 7 true", code, exited)
		}
		if err := tty.Close(); err != nil {
			t.Errorf("Close after the exit: got %v, want nil", err)
		}
	})

	t.Run("the caller's context ends the session", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		tty, err := r.client.TTY(cctx, r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		cancel()
		if _, err := tty.Read(make([]byte, 8)); !errors.Is(err, context.Canceled) {
			t.Errorf("Read: got %v, want context.Canceled", err)
		}
		term := r.agent.Terminals()[len(r.agent.Terminals())-1]
		testutil.Eventually(t, 5*time.Second, "the agent closed the terminal", term.Closed)
	})

	t.Run("refusals before the start", func(t *testing.T) {
		stopped, err := r.client.Create(ctx, wire.CreateContainerRequest{Name: "stopped", Image: "img"})
		if err != nil {
			t.Fatal(err)
		}
		other := r.dialer.Client("ws-2", r.agent.Addr()) // the agent's certificate does not name ws-2
		tests := []struct {
			name   string
			client *agentclient.Client
			ctx    context.Context
			id     string
			req    wire.TTYRequest
			want   []error
		}{
			{"stopped container", r.client, ctx, stopped.ID, wire.TTYRequest{Cmd: []string{"bash"}}, []error{agentclient.ErrNotRunning, agentclient.ErrConflict}},
			{"missing container", r.client, ctx, "nope", wire.TTYRequest{Cmd: []string{"bash"}}, []error{agentclient.ErrNotFound}},
			{"no command", r.client, ctx, r.ctr.ID, wire.TTYRequest{}, []error{agentclient.ErrBadRequest}},
			{"stale epoch", r.client, agentclient.WithEpoch(ctx, 2), r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}}, []error{agentclient.ErrStaleEpoch}},
			{"not the agent it claims to be", other, ctx, r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}}, []error{agentclient.ErrUnreachable}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tty, err := tt.client.TTY(tt.ctx, tt.id, tt.req)
				if err == nil {
					tty.Close()
					t.Fatal("got a terminal, want a refusal")
				}
				for _, want := range tt.want {
					if !errors.Is(err, want) {
						t.Errorf("got %v, want it to match %v", err, want)
					}
				}
			})
		}
		if tty, err := r.client.TTY(agentclient.WithEpoch(ctx, 3), r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}}); err != nil {
			t.Errorf("current epoch: got %v, want a terminal", err)
		} else {
			tty.Close()
		}
	})
}

// An agent going away ends an open terminal with ErrUnavailable.
func TestStreamTTYAgentShutdown(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{})
	ctx := streamCtx(t)
	tty, err := r.client.TTY(ctx, r.ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	read := make(chan error, 1)
	go func() { _, err := io.ReadAll(tty); read <- err }()
	r.agent.Close()
	if err := <-read; !errors.Is(err, agentclient.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
}

// servePreview serves h as the scheduler's preview route: /preview/<rest> is
// the app's /<rest>.
func servePreview(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(http.StripPrefix("/preview", h))
	t.Cleanup(srv.Close)
	return srv.URL + "/preview"
}

func TestStreamProxy(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{})
	ctx := streamCtx(t)
	appHeaders := make(chan http.Header, 1)
	port := serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: first\n\n")
			http.NewResponseController(w).Flush()
			<-req.Context().Done()
		case "/upload":
			_ = http.NewResponseController(w).EnableFullDuplex()
			sc := bufio.NewScanner(req.Body)
			for sc.Scan() {
				fmt.Fprintf(w, "got %s\n", sc.Text())
				http.NewResponseController(w).Flush()
			}
		case "/broken":
			http.Error(w, "the app's own 502", http.StatusBadGateway)
		default:
			appHeaders <- req.Header.Clone()
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<html><head></head><body>%s %s</body></html>", req.URL.EscapedPath(), req.URL.RawQuery)
		}
	}))
	var mu sync.Mutex
	var handled []error
	h := r.client.Proxy(r.ctr.ID, port, agentclient.ProxyOptions{
		ModifyResponse: func(resp *http.Response) error { // the scheduler's script injection
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			body = bytes.Replace(body, []byte("<head>"), []byte(`<head><script data-podex-devtools="true"></script>`), 1)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			mu.Lock()
			handled = append(handled, err)
			mu.Unlock()
			http.Error(w, "handled: "+err.Error(), http.StatusBadGateway)
		},
	})
	front := servePreview(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.ServeHTTP(w, req.WithContext(agentclient.WithEpoch(req.Context(), 3)))
	}))

	t.Run("path, query, headers, response modified", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front+"/a/b%20c/index.html?x=1&y=%2F", nil)
		req.Header.Set(wire.HeaderServiceToken, "secret")
		req.Header.Set(wire.HeaderUserID, "user-1")
		req.Header.Set("X-Berth-Debug", "1")
		req.Header.Set("X-Forwarded-Host", "preview.example.com")
		req.Header.Set("Cookie", "session=app")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		want := `<html><head><script data-podex-devtools="true"></script></head><body>/a/b%20c/index.html x=1&y=%2F</body></html>`
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
		if resp.ContentLength != int64(len(want)) {
			t.Errorf("Content-Length: got %d, want %d", resp.ContentLength, len(want))
		}
		got := <-appHeaders
		for _, name := range []string{wire.HeaderServiceToken, wire.HeaderUserID, "X-Berth-Debug", wire.HeaderEpoch} {
			if v := got.Values(name); len(v) != 0 {
				t.Errorf("the app got %s: %q", name, v)
			}
		}
		if got.Get("X-Forwarded-Host") != "preview.example.com" || got.Get("Cookie") != "session=app" {
			t.Errorf("the app's headers: got %v, want X-Forwarded-Host and Cookie passed", got)
		}
	})

	t.Run("server-sent events flow as written", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "data: first\n" {
			t.Errorf("got %q, %v, want the first event while the stream is open", line, err)
		}
	})

	t.Run("request and answer bodies stream", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, front+"/upload", pr)
		respc := make(chan *http.Response, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the test once received
			if err != nil {
				t.Error(err)
				close(respc)
				return
			}
			respc <- resp
		}()
		if _, err := io.WriteString(pw, "one\n"); err != nil {
			t.Fatal(err)
		}
		var resp *http.Response
		select {
		case got, ok := <-respc:
			if !ok {
				return
			}
			resp = got
		case <-time.After(10 * time.Second):
			t.Fatal("no answer within 10s while the request body is still open")
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != "got one\n" {
			t.Fatalf("got %q, %v, want the first answer line while the request is open", line, err)
		}
		if _, err := io.WriteString(pw, "two\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "got two\n" {
			t.Fatalf("got %q, %v, want the second answer line", line, err)
		}
	})

	t.Run("an app's own 502 is its answer, not a failure", func(t *testing.T) {
		resp, err := http.Get(front + "/broken")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "the app's own 502") {
			t.Errorf("got %d %q, want the app's 502", resp.StatusCode, body)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(handled) != 0 {
			t.Errorf("ErrorHandler called with %v for an answer of the app", handled)
		}
	})

	t.Run("a WebSocket upgrade passes through both proxies", func(t *testing.T) {
		wsPort := serveApp(t, echoSocketApp())
		hws := r.client.Proxy(r.ctr.ID, wsPort, agentclient.ProxyOptions{})
		wsFront := servePreview(t, hws)
		conn, _, err := websocket.Dial(ctx, wsFront+"/socket", &websocket.DialOptions{Subprotocols: []string{"echo"}}) //nolint:bodyclose // Dial closes the handshake answer itself
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		checkSocketEcho(t, ctx, conn)
	})
}

// The proxy's failures reach ErrorHandler as errors matching the client's
// sentinels, for the scheduler to word.
func TestStreamProxyErrors(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{ProxyResponseHeaderTimeout: 200 * time.Millisecond})
	ctx := streamCtx(t)
	slow := serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	stopped, err := r.client.Create(ctx, wire.CreateContainerRequest{Name: "stopped", Image: "img"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		id    string
		port  int
		epoch int64
		setup func() (undo func())
		want  error
	}{
		{"refused", r.ctr.ID, testutil.FreePort(t), 0, nil, agentclient.ErrUpstreamRefused},
		{"timeout", r.ctr.ID, slow, 0, nil, agentclient.ErrUpstreamTimeout},
		{"not running", stopped.ID, slow, 0, nil, agentclient.ErrNotRunning},
		{"no address", r.ctr.ID, slow, 0, func() func() {
			r.agent.SetAddress("")
			return func() { r.agent.SetAddress("127.0.0.1") }
		}, agentclient.ErrNotRunning},
		{"missing container", "nope", slow, 0, nil, agentclient.ErrNotFound},
		{"stale epoch", r.ctr.ID, slow, 1, nil, agentclient.ErrStaleEpoch},
		{"agent down", r.ctr.ID, slow, 0, func() func() {
			r.agent.SetDown(true)
			return func() { r.agent.SetDown(false) }
		}, agentclient.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				defer tt.setup()()
			}
			var got error
			h := r.client.Proxy(tt.id, tt.port, agentclient.ProxyOptions{
				ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
					got = err
					w.WriteHeader(599)
				},
			})
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.epoch > 0 {
				req = req.WithContext(agentclient.WithEpoch(req.Context(), tt.epoch))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 599 || !errors.Is(got, tt.want) {
				t.Errorf("got status %d and error %v, want ErrorHandler called with %v", rec.Code, got, tt.want)
			}
		})
	}

	t.Run("the default ErrorHandler answers the agent's status", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r.client.Proxy(r.ctr.ID, slow, agentclient.ProxyOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusGatewayTimeout {
			t.Errorf("got %d %q, want 504", rec.Code, rec.Body)
		}
	})

	t.Run("an agent that is gone is unreachable", func(t *testing.T) {
		var got error
		h := r.client.Proxy(r.ctr.ID, slow, agentclient.ProxyOptions{
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) { got = err },
		})
		r.agent.Close()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if !errors.Is(got, agentclient.ErrUnreachable) {
			t.Errorf("got %v, want ErrUnreachable", got)
		}
	})
}

// echoSocketApp is an app's WebSocket that echoes every message and offers
// the "echo" subprotocol; it answers 404 to /not-a-socket and redirects
// /login-first.
func echoSocketApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/not-a-socket":
			http.NotFound(w, req)
			return
		case "/login-first":
			http.Redirect(w, req, "/login", http.StatusFound)
			return
		}
		c, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{"echo"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		if q := req.URL.RawQuery; q != "" {
			_ = c.Write(req.Context(), websocket.MessageText, []byte("query "+q))
		}
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

// checkSocketEcho sends a text and a binary message on conn and expects them back.
func checkSocketEcho(t *testing.T, ctx context.Context, conn *websocket.Conn) {
	t.Helper()
	if conn.Subprotocol() != "echo" {
		t.Errorf("subprotocol: got %q, want echo", conn.Subprotocol())
	}
	for _, m := range []struct {
		typ websocket.MessageType
		p   string
	}{{websocket.MessageText, "hello"}, {websocket.MessageBinary, "\x00\xff"}} {
		if err := conn.Write(ctx, m.typ, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		typ, p, err := conn.Read(ctx)
		if err != nil || typ != m.typ || string(p) != m.p {
			t.Errorf("echo: got %v %q %v, want %v %q", typ, p, err, m.typ, m.p)
		}
	}
}

func TestStreamDialWebSocket(t *testing.T) {
	r := newStreamRig(t, agenttest.StreamConfig{})
	ctx := streamCtx(t)
	port := serveApp(t, echoSocketApp())

	t.Run("frames flow both ways; the query passes", func(t *testing.T) {
		conn, err := r.client.DialWebSocket(agentclient.WithEpoch(ctx, 3), r.ctr.ID, port, "/hmr?token=abc", []string{"echo"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		if _, p, err := conn.Read(ctx); err != nil || string(p) != "query token=abc" {
			t.Errorf("got %q, %v, want the query as the app saw it", p, err)
		}
		checkSocketEcho(t, ctx, conn)
		if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	t.Run("failures", func(t *testing.T) {
		tests := []struct {
			name       string
			port       int
			path       string
			want       error
			wantStatus int // of a HandshakeError
		}{
			{"refused", testutil.FreePort(t), "/", agentclient.ErrUpstreamRefused, 0},
			{"not a socket", port, "/not-a-socket", agentclient.ErrUpstreamHandshake, http.StatusNotFound},
			{"redirect not followed", port, "/login-first", agentclient.ErrUpstreamHandshake, http.StatusFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				conn, err := r.client.DialWebSocket(ctx, r.ctr.ID, tt.port, tt.path, nil)
				if err == nil {
					conn.CloseNow()
					t.Fatal("dial succeeded, want a failure")
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("got %v, want %v", err, tt.want)
				}
				var he *agentclient.HandshakeError
				if tt.wantStatus != 0 && (!errors.As(err, &he) || he.Status != tt.wantStatus) {
					t.Errorf("got %v, want a HandshakeError with status %d", err, tt.wantStatus)
				}
				if errors.Is(tt.want, agentclient.ErrUpstreamRefused) && errors.Is(err, agentclient.ErrUpstreamHandshake) {
					t.Errorf("a refused connection matches ErrUpstreamHandshake too: %v", err)
				}
			})
		}
	})

	t.Run("the agent's identity is checked", func(t *testing.T) {
		if _, err := r.dialer.Client("ws-2", r.agent.Addr()).DialWebSocket(ctx, r.ctr.ID, port, "/", nil); !errors.Is(err, agentclient.ErrUnreachable) {
			t.Errorf("got %v, want ErrUnreachable (the certificate names ws-1)", err)
		}
	})
}
