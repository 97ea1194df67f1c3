package computeapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/computeapi"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// These tests run the whole preview path: the compute API over real HTTP →
// the real orchestrator on a real SQLite registry → the agent client over
// real mTLS → the real agent API (agenttest, over the in-memory Docker),
// whose proxy reaches the workspace's ports on 127.0.0.1, where the test's
// own app listens.

const token = "service-token-for-tests"

// stack is the path above with one running workspace, ws1.
type stack struct {
	orch  *orchestrator.Orchestrator
	agent *agenttest.Agent
	url   string // the compute API
	ws    registry.Workspace
	app   *app
	port  int // the app's port
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	db, err := registry.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "ws-1")
	host, port, _ := net.SplitHostPort(a.Addr())
	p, _ := strconv.Atoi(port)
	if _, err := db.CreateServer(ctx, registry.Server{ID: "ws-1", Hostname: "ws-1", IPAddress: host, AgentPort: p,
		Architecture: "amd64", Region: "local", TotalCPU: 8, TotalMemoryMB: 16384, TotalDiskGB: 100}); err != nil {
		t.Fatal(err)
	}
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	orch, err := orchestrator.New(orchestrator.Default(), orchestrator.Deps{DB: db, Agents: dialer, Health: healthy{}, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := orch.Create(ctx, orchestrator.CreateRequest{UserID: "alice", SessionID: "s1", WorkspaceID: "ws1",
		Config: orchestrator.WorkspaceConfig{Tier: "starter"}})
	if err != nil {
		t.Fatal(err)
	}
	api := computeapi.New(computeapi.Deps{Workspaces: orch, ServiceToken: token, Log: hclog.NewNullLogger()})
	e := echo.New()
	e.HTTPErrorHandler = computeapi.ErrorHandler
	api.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		api.Shutdown()
		srv.Close()
	})
	ap := newApp(t)
	return &stack{orch: orch, agent: a, url: srv.URL, ws: ws, app: ap, port: ap.port}
}

type healthy struct{}

func (healthy) Health(string) (fleet.Health, bool) { return fleet.HealthHealthy, true }

// open sends a request with the service token and X-User-ID, as the
// podex API does, plus hdr ("" deletes one), and returns the answer with
// its body unread: the caller closes it.
func (s *stack) open(t *testing.T, method, path string, body io.Reader, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Internal-Service-Token", token)
	req.Header.Set("X-User-ID", "alice")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// answer is a whole answer.
type answer struct {
	status int
	header http.Header
	body   string
}

// do is open, with the body read.
func (s *stack) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) answer {
	t.Helper()
	resp := s.open(t, method, path, body, hdr)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// app is the workspace's app: plain net/http on a port of 127.0.0.1.
type app struct {
	port  int
	mu    sync.Mutex
	heard []http.Header // the headers of every request
	sse   chan struct{} // the test's go-ahead for each next event
	sent  [32]byte      // the hash of what /big sent
}

const page = `<!doctype html><html><head><title>preview</title></head><body><h1>It works</h1></body></html>`

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{sse: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"html":"<head></head>"}`)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"bytes": n, "sha256": h.Sum(nil)})
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(mb<<20))
		h := sha256.New()
		rng := rand.NewChaCha8([32]byte{1})
		buf := make([]byte, 64<<10)
		for range mb << 4 {
			rng.Read(buf)
			h.Write(buf)
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
		a.mu.Lock()
		copy(a.sent[:], h.Sum(nil))
		a.mu.Unlock()
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range 3 {
			if i > 0 {
				select { // the next event only once the test has read this one
				case <-a.sse:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, "data: event "+strconv.Itoa(i)+"\n\n")
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"vite-hmr"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		conn.Write(r.Context(), websocket.MessageText, []byte("hello "+r.URL.RawQuery+" "+conn.Subprotocol()))
		for {
			typ, msg, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			if err := conn.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.heard = append(a.heard, r.Header.Clone())
		a.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: record}}
	srv.Start()
	t.Cleanup(srv.Close)
	a.port = l.Addr().(*net.TCPAddr).Port
	return a
}

func (a *app) headers() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.heard...)
}

func (s *stack) proxyPath(rest string) string {
	return "/preview/ws1/proxy/" + strconv.Itoa(s.port) + rest
}

// HTML gets the bridge exactly once with a right Content-Length; JSON is
// untouched; a POST body reaches the app; the internal headers never do.
func TestPreviewProxyThroughAgent(t *testing.T) {
	s := newStack(t)
	t.Run("HTML", func(t *testing.T) {
		r := s.do(t, "GET", s.proxyPath("/"), nil, map[string]string{"Accept-Encoding": "gzip"})
		body := r.body
		if r.status != 200 || strings.Count(body, `data-podex-devtools="true"`) != 1 ||
			!strings.Contains(body, "<h1>It works</h1>") || !strings.HasPrefix(body, `<!doctype html><html><head><script data-podex-devtools`) {
			t.Errorf("got %d %q, want the page with the bridge once, after <head>", r.status, body[:min(200, len(body))])
		}
		if r.header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("Content-Length %q for %d bytes", r.header.Get("Content-Length"), len(body))
		}
	})
	t.Run("JSON", func(t *testing.T) {
		if r := s.do(t, "GET", s.proxyPath("/json?x=1"), nil, nil); r.status != 200 || r.body != `{"ok":true,"html":"<head></head>"}` {
			t.Errorf("got %d %q, want the JSON untouched", r.status, r.body)
		}
	})
	t.Run("POST body", func(t *testing.T) {
		if r := s.do(t, "POST", s.proxyPath("/echo"), strings.NewReader("the body"), nil); r.status != 200 || r.body != "the body" {
			t.Errorf("got %d %q, want the body back", r.status, r.body)
		}
	})
	t.Run("internal headers never reach the app", func(t *testing.T) {
		s.do(t, "GET", s.proxyPath("/json"), nil, map[string]string{"X-Berth-Epoch": "99", "X-Custom": "kept"})
		s.do(t, "GET", s.proxyPath("/json"), nil, map[string]string{"X-Internal-Service-Token": "", "Authorization": "Bearer " + token})
		heard := s.app.headers()
		if len(heard) < 2 {
			t.Fatalf("the app heard %d requests", len(heard))
		}
		for _, h := range heard {
			for name := range h {
				if wire.IsInternalHeader(name) {
					t.Errorf("the app got %s: %q", name, h.Values(name))
				}
			}
			if ae := h.Values("Accept-Encoding"); len(ae) != 1 || ae[0] != "identity" {
				t.Errorf("the app got Accept-Encoding %q, want identity only", ae)
			}
			if strings.Contains(h.Get("Authorization"), token) {
				t.Errorf("the app got the service token as Authorization")
			}
		}
		if heard[len(heard)-2].Get("X-Custom") != "kept" {
			t.Errorf("X-Custom was not forwarded: %v", heard[len(heard)-2])
		}
	})
	t.Run("refused port", func(t *testing.T) {
		port := testutil.FreePort(t)
		r := s.do(t, "GET", "/preview/ws1/proxy/"+strconv.Itoa(port)+"/", nil, nil)
		want := `{"detail":"Could not connect to service on port ` + strconv.Itoa(port) + `. Is the development server running?"}`
		if body := strings.TrimSpace(r.body); r.status != 502 || body != want {
			t.Errorf("got %d %s, want 502 %s", r.status, body, want)
		}
	})
}

// A 100 MB download streams: the bytes are hashed as they come, and the
// heap of the whole process (API, agent and app are all in it) never grows
// by anything near the body's size.
func TestPreviewProxyStreamsLargeBodies(t *testing.T) {
	s := newStack(t)
	const mb = 100
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	}()
	start := time.Now()
	resp := s.open(t, "GET", s.proxyPath("/big?mb="+strconv.Itoa(mb)), nil, nil)
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 32<<10))
	took := time.Since(start)
	close(stop)
	<-sampled
	if err != nil || n != mb<<20 {
		t.Fatalf("read %d bytes, %v; want %d", n, err, mb<<20)
	}
	s.app.mu.Lock()
	sent := s.app.sent
	s.app.mu.Unlock()
	if !bytes.Equal(h.Sum(nil), sent[:]) {
		t.Errorf("the bytes differ from what the app sent")
	}
	grew := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("%d MB in %s (%.0f MB/s); heap %d MiB before, peak %d MiB (grew %d MiB)", mb, took.Round(time.Millisecond),
		float64(mb)/took.Seconds(), base.HeapAlloc>>20, peak.Load()>>20, grew>>20)
	if grew > 48<<20 {
		t.Errorf("the heap grew by %d MiB while %d MB streamed: the body is being held", grew>>20, mb)
	}

	// And an upload streams the other way.
	up := rand.NewChaCha8([32]byte{2})
	want := sha256.New()
	r := s.do(t, "POST", s.proxyPath("/upload"), io.TeeReader(io.LimitReader(up, 32<<20), want), nil)
	var got struct {
		Bytes  int64  `json:"bytes"`
		SHA256 []byte `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Bytes != 32<<20 || !bytes.Equal(got.SHA256, want.Sum(nil)) {
		t.Errorf("upload: the app got %d bytes (%v), want 32 MiB with the same hash", got.Bytes, err)
	}
}

// Server-sent events arrive one by one, each before the app writes the
// next (the app waits for the test to have read it).
func TestPreviewProxyStreamsEvents(t *testing.T) {
	s := newStack(t)
	resp := s.open(t, "GET", s.proxyPath("/sse"), nil, map[string]string{"Accept": "text/event-stream"}) //nolint:bodyclose // closed below; read by a goroutine
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
	}()
	for i := range 3 {
		select {
		case line := <-lines:
			if want := "data: event " + strconv.Itoa(i); line != want {
				t.Fatalf("event %d: got %q, want %q", i, line, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d did not arrive before the next was written: buffered", i)
		}
		if i < 2 {
			s.app.sse <- struct{}{}
		}
	}
	if _, more := <-lines; more {
		t.Errorf("more after the last event")
	}
}

// A stopped workspace is 503 by its stored status; its WebSocket is 1008.
func TestPreviewProxyStoppedWorkspace(t *testing.T) {
	s := newStack(t)
	if err := s.orch.Stop(context.Background(), s.ws); err != nil {
		t.Fatal(err)
	}
	r := s.do(t, "GET", s.proxyPath("/"), nil, nil)
	if body := strings.TrimSpace(r.body); r.status != 503 || body != `{"detail":"Workspace ws1 is not running"}` {
		t.Errorf("got %d %s, want 503", r.status, body)
	}
	conn := s.dial(t, "/ws/ws1/"+strconv.Itoa(s.port)+"/ws")
	if ce := closeOf(t, conn); ce != (websocket.CloseError{Code: 1008, Reason: "Workspace is not running"}) {
		t.Errorf("socket: got %d %q", ce.Code, ce.Reason)
	}
}

func (s *stack) dial(t *testing.T, path string, subprotocols ...string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+path, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{"X-Internal-Service-Token": {token}}, Subprotocols: subprotocols})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func closeOf(t *testing.T, conn *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("ended without a close: %v", err)
		}
		return ce
	}
}

// A WebSocket echo through the agent: text and binary frames keep their
// types, the subprotocol is negotiated, the query stays behind; a closed
// port is 1008.
func TestSocketProxyThroughAgent(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := s.dial(t, "/ws/ws1/"+strconv.Itoa(s.port)+"/ws?secret=1", "vite-hmr")
	if _, hello, err := conn.Read(ctx); err != nil || string(hello) != "hello  vite-hmr" {
		t.Fatalf("hello: got %q, %v; want no query and vite-hmr", hello, err)
	}
	start := time.Now()
	const rounds = 200
	for i := range rounds {
		typ, msg := websocket.MessageText, []byte("ping "+strconv.Itoa(i))
		if i%2 == 1 {
			typ, msg = websocket.MessageBinary, []byte{0, byte(i), 0xff}
		}
		if err := conn.Write(ctx, typ, msg); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := conn.Read(ctx)
		if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: got %v %q, %v; want %v %q", i, gotTyp, got, err, typ, msg)
		}
	}
	t.Logf("%d echo round trips through the agent: %s each", rounds, (time.Since(start) / rounds).Round(time.Microsecond))
	conn.Close(websocket.StatusNormalClosure, "")

	port := testutil.FreePort(t)
	closed := s.dial(t, "/ws/ws1/"+strconv.Itoa(port)+"/ws")
	if ce := closeOf(t, closed); ce != (websocket.CloseError{Code: 1008, Reason: "Could not connect to port " + strconv.Itoa(port)}) {
		t.Errorf("closed port: got %d %q", ce.Code, ce.Reason)
	}
}
