package computeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// fakeTerminal is the terminal side of fakeWorkspaces: OpenTerminal opens
// a real TTY stream (agentclient over mTLS) to the real agent API over the
// in-memory Docker (agenttest), whose terminal is an echo unless a test
// sets another (agent.SetTTY); tmux sessions are a set of names, which an
// open adds and a kill removes.
type fakeTerminal struct {
	agent  *agenttest.Agent
	client *agentclient.Client
	ctrID  string

	mu       sync.Mutex
	reqs     []orchestrator.TerminalRequest
	sessions map[string]bool
}

func newFakeTerminal(t *testing.T) *fakeTerminal {
	t.Helper()
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "srv-1")
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	client := dialer.Client("srv-1", a.Addr())
	ctr, err := client.Create(context.Background(), wire.CreateContainerRequest{Name: "workspace-ws1", Image: "berth/workspace:dev",
		Start: true, WorkspaceID: "ws1", Epoch: 1, Resources: wire.Resources{CPU: 1, MemoryMB: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeTerminal{agent: a, client: client, ctrID: ctr.ID, sessions: map[string]bool{}}
}

func (ft *fakeTerminal) open(ctx context.Context, ws registry.Workspace, req orchestrator.TerminalRequest) (*agentclient.TTY, error) {
	name := orchestrator.TerminalSession(ws.ID, req.Session)
	ft.mu.Lock()
	ft.reqs = append(ft.reqs, req)
	ft.sessions[name] = true
	ft.mu.Unlock()
	return ft.client.TTY(ctx, ft.ctrID, wire.TTYRequest{Cmd: []string{"tmux", "attach-session", "-t", "=" + name},
		User: "dev", Rows: orchestrator.DefaultTerminalRows, Cols: orchestrator.DefaultTerminalCols})
}

func (ft *fakeTerminal) kill(ws registry.Workspace, session string) bool {
	name := orchestrator.TerminalSession(ws.ID, session)
	ft.mu.Lock()
	defer ft.mu.Unlock()
	alive := ft.sessions[name]
	delete(ft.sessions, name)
	return alive
}

func (ft *fakeTerminal) requests() []orchestrator.TerminalRequest {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]orchestrator.TerminalRequest(nil), ft.reqs...)
}

// terminalRig is the compute API served over HTTP with a fake whose ws1
// is alice's running workspace with a terminal.
type terminalRig struct {
	t    *testing.T
	api  *API
	fake *fakeWorkspaces
	term *fakeTerminal // nil unless withTerminal
	url  string        // ws://…
	http string        // http://…
}

func newTerminalRig(t *testing.T, withTerminal bool, limits StreamLimits) *terminalRig {
	t.Helper()
	f := newFake(aliceWS())
	r := &terminalRig{t: t, fake: f}
	if withTerminal {
		r.term = newFakeTerminal(t)
		f.term = r.term
	}
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler
	r.api = New(Deps{Workspaces: f, ServiceToken: testToken, Streams: limits, Log: hclog.NewNullLogger()})
	r.api.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		r.api.Shutdown()
		srv.Close()
	})
	r.http = srv.URL
	r.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return r
}

// open dials path with the service token and wants the upgrade.
func (r *terminalRig) open(path string) *websocket.Conn {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, r.url+path, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{headerServiceToken: {testToken}}})
	if err != nil {
		r.t.Fatalf("dial %s: %v", path, err)
	}
	r.t.Cleanup(func() { _ = conn.CloseNow() })
	conn.SetReadLimit(1 << 20) // the podex API's client (websockets' max_size)
	return conn
}

// closeOf reads until the connection ends and returns its close status
// and reason.
func closeOf(t *testing.T, conn *websocket.Conn) (websocket.StatusCode, string) {
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
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

// readOutput reads binary frames until the output holds want; it returns
// the output and the number of frames.
func readOutputFor(t *testing.T, conn *websocket.Conn, want string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	frames := 0
	for !strings.Contains(out.String(), want) {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("reading for %q (have %q): %v", want, out.String(), err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("output frame of type %v, want binary", typ)
		}
		frames++
		out.Write(data)
	}
	return out.String(), frames
}

func write(t *testing.T, conn *websocket.Conn, typ websocket.MessageType, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, typ, data); err != nil {
		t.Fatalf("write %q: %v", data, err)
	}
}

// waitUntil polls cond until it holds, failing the test after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func resizeFrame(rows, cols uint16) []byte {
	return []byte{'r', byte(rows >> 8), byte(rows), byte(cols >> 8), byte(cols)}
}

// Without a valid token the handshake is refused before the upgrade with a
// plain 403, and nothing is looked up; a request that is no WebSocket
// upgrade is not routed (404).
func TestTerminalTokenBeforeUpgrade(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
	}{
		{name: "no token", header: http.Header{headerServiceToken: {""}}},
		{name: "wrong token", header: http.Header{headerServiceToken: {"nope"}}},
		{name: "wrong bearer", header: http.Header{headerServiceToken: {""}, "Authorization": {"Bearer nope"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTerminalRig(t, false, StreamLimits{})
			h := http.Header{}
			for k, v := range tt.header {
				if v[0] != "" {
					h[k] = v
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, resp, err := websocket.Dial(ctx, r.url+"/terminal/ws1?session_id=s1", &websocket.DialOptions{HTTPHeader: h}) //nolint:bodyclose // Dial closes the handshake answer itself
			if err == nil {
				_ = conn.CloseNow()
				t.Fatal("dial: upgraded, want a refused handshake")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("dial: got %v (%v), want 403", resp, err)
			}
			if resp.Header.Get("Upgrade") != "" {
				t.Errorf("403 carries Upgrade %q", resp.Header.Get("Upgrade"))
			}
			if len(r.fake.calls) != 0 {
				t.Errorf("calls before the token check: %v", r.fake.calls)
			}
		})
	}

	t.Run("no token configured", func(t *testing.T) {
		f := newFake(aliceWS())
		e := echo.New()
		e.HTTPErrorHandler = ErrorHandler
		New(Deps{Workspaces: f}).Register(e)
		srv := httptest.NewServer(e)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/terminal/ws1", //nolint:bodyclose // Dial closes the handshake answer itself
			&websocket.DialOptions{HTTPHeader: http.Header{headerServiceToken: {testToken}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial: got %v, %v; want 403", resp, err)
		}
	})

	t.Run("not an upgrade", func(t *testing.T) {
		e := newTestEcho(newFake(aliceWS()), testToken)
		checkJSON(t, req{method: http.MethodGet, path: "/terminal/ws1"}.send(e), http.StatusNotFound, detail("Not Found"))
	})
}

// After the upgrade every check that fails closes the socket with the
// contract's code and reason.
func TestTerminalCloseCodes(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		change     func(f *fakeWorkspaces)
		wantCode   websocket.StatusCode
		wantReason string
		wantOpen   bool // OpenTerminal was called
	}{
		{name: "bad id", path: "/terminal/bad.id", wantCode: 1008, wantReason: "Invalid workspace ID"},
		{name: "unsafe id", path: "/terminal/a%20b", wantCode: 1008, wantReason: "Invalid workspace ID"},
		{name: "no record", path: "/terminal/nope", wantCode: 1008, wantReason: "Workspace not found"},
		{name: "gone at the sync", path: "/terminal/ws1", change: func(f *fakeWorkspaces) { f.syncErr = orchestrator.ErrNotFound },
			wantCode: 1008, wantReason: "Workspace not found"},
		{name: "stopped after the sync", path: "/terminal/ws1", change: func(f *fakeWorkspaces) { f.syncStatus = fleet.StatusStopped },
			wantCode: 1008, wantReason: "Workspace is not running"},
		{name: "no container", path: "/terminal/ws1", change: func(f *fakeWorkspaces) {
			w := f.ws["ws1"]
			w.ContainerID = ""
			f.ws["ws1"] = w
		}, wantCode: 1008, wantReason: "Workspace has no container"},
		{name: "no server", path: "/terminal/ws1", change: func(f *fakeWorkspaces) {
			w := f.ws["ws1"]
			w.ServerID = ""
			f.ws["ws1"] = w
		}, wantCode: 1011, wantReason: "Workspace server not available"},
		{name: "agent unreachable", path: "/terminal/ws1", change: func(f *fakeWorkspaces) {
			f.opErr["OpenTerminal"] = orchestrator.ErrServerUnavailable
		}, wantCode: 1011, wantReason: "Workspace server not available", wantOpen: true},
		{name: "container stopped meanwhile", path: "/terminal/ws1", change: func(f *fakeWorkspaces) {
			f.opErr["OpenTerminal"] = orchestrator.ErrNotRunning
		}, wantCode: 1008, wantReason: "Workspace is not running", wantOpen: true},
		{name: "session failed to start", path: "/terminal/ws1", change: func(f *fakeWorkspaces) {
			f.opErr["OpenTerminal"] = errors.New("tmux session podex-s1: setup exited 1: no space left")
		}, wantCode: 1011, wantReason: "Failed to start terminal session", wantOpen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTerminalRig(t, false, StreamLimits{})
			if tt.change != nil {
				tt.change(r.fake)
			}
			conn := r.open(tt.path + "?session_id=s1&shell=bash")
			code, reason := closeOf(t, conn)
			if code != tt.wantCode || reason != tt.wantReason {
				t.Errorf("close: got %d %q, want %d %q", code, reason, tt.wantCode, tt.wantReason)
			}
			opened := false
			for _, c := range r.fake.calls {
				opened = opened || strings.HasPrefix(c, "OpenTerminal ")
			}
			if opened != tt.wantOpen {
				t.Errorf("OpenTerminal called: %v, want %v (calls %v)", opened, tt.wantOpen, r.fake.calls)
			}
			waitUntil(t, "no slot held", func() bool { return r.api.streams.count("ws1", streamTerminal) == 0 })
		})
	}
}

// A session: keystrokes (text) and raw input (binary) reach the terminal
// and its output comes back in binary frames; resize frames resize it,
// short 'r' frames are dropped; a disconnect detaches the terminal without
// killing the session, and frees the slot.
func TestTerminalSession(t *testing.T) {
	r := newTerminalRig(t, true, StreamLimits{})
	conn := r.open("/terminal/ws1?session_id=s1&shell=zsh")

	write(t, conn, websocket.MessageText, []byte("echo hi\r"))
	if out, _ := readOutputFor(t, conn, "echo hi\r"); out != "echo hi\r" {
		t.Errorf("echo: got %q", out)
	}
	if n := r.fake.activityOf("ws1"); n < 2 {
		t.Errorf("use of ws1 noted %d times; want input and output noted (idle stop)", n)
	}
	write(t, conn, websocket.MessageBinary, []byte("\x1b[A\x03")) // up, ctrl-c
	readOutputFor(t, conn, "\x1b[A\x03")

	terms := r.term.agent.Terminals()
	if len(terms) != 1 {
		t.Fatalf("terminals: got %d, want 1", len(terms))
	}
	term := terms[0]
	for _, want := range []agenttest.TermSize{{Rows: 40, Cols: 120}, {Rows: 1, Cols: 65535}} {
		write(t, conn, websocket.MessageBinary, resizeFrame(want.Rows, want.Cols))
		select {
		case got := <-term.Resized():
			if got != want {
				t.Errorf("resize: got %+v, want %+v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("resize to %+v never reached the terminal", want)
		}
	}
	// A longer 'r' frame is a resize too; a shorter one is dropped, not typed.
	write(t, conn, websocket.MessageBinary, append(resizeFrame(50, 132), "tail"...))
	write(t, conn, websocket.MessageBinary, []byte("r\x00\x10"))
	write(t, conn, websocket.MessageText, []byte("r")) // text 'r' is a keystroke
	if out, _ := readOutputFor(t, conn, "r"); out != "r" {
		t.Errorf("after the resize frames: got %q, want only the typed r", out)
	}
	if got := term.Resizes(); len(got) != 3 || got[2] != (agenttest.TermSize{Rows: 50, Cols: 132}) {
		t.Errorf("resizes: got %+v, want 3, the last 50x132", got)
	}

	if d := cmp.Diff([]orchestrator.TerminalRequest{{Session: "s1", Shell: "zsh"}}, r.term.requests()); d != "" {
		t.Errorf("terminal requests (-want +got):\n%s", d)
	}
	if n := r.api.streams.count("ws1", streamTerminal); n != 1 {
		t.Errorf("terminal slots held: %d, want 1", n)
	}

	if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the terminal detached", term.Closed)
	waitUntil(t, "the slot freed", func() bool { return r.api.streams.count("ws1", streamTerminal) == 0 })
	if !r.term.kill(aliceWS(), "s1") {
		t.Error("the tmux session was gone after the disconnect, want it alive")
	}
}

// When the terminal's process ends (its tmux session was killed), the
// remaining output is delivered and the socket closes with 1000.
func TestTerminalEnds(t *testing.T) {
	r := newTerminalRig(t, true, StreamLimits{})
	r.term.agent.SetTTY(func(_ context.Context, _ wire.Container, _ wire.TTYRequest, term *agenttest.Terminal) int {
		_, _ = io.WriteString(term, "[exited]\r\n")
		return 0
	})
	conn := r.open("/terminal/ws1?session_id=s1")
	readOutputFor(t, conn, "[exited]\r\n")
	if code, reason := closeOf(t, conn); code != websocket.StatusNormalClosure || reason != "Terminal session ended" {
		t.Errorf("close: got %d %q, want 1000 %q", code, reason, "Terminal session ended")
	}
}

// A terminal whose agent goes away ends with 1011 "Workspace server not
// available".
func TestTerminalServerLost(t *testing.T) {
	r := newTerminalRig(t, true, StreamLimits{})
	conn := r.open("/terminal/ws1?session_id=s1")
	write(t, conn, websocket.MessageText, []byte("x"))
	readOutputFor(t, conn, "x")
	r.term.agent.Close()
	if code, reason := closeOf(t, conn); code != websocket.StatusInternalError || reason != "Workspace server not available" {
		t.Errorf("close: got %d %q, want 1011 %q", code, reason, "Workspace server not available")
	}
}

// Past the per-workspace cap a terminal is refused with 1013 and a reason
// naming the cap; a closed one frees its slot.
func TestTerminalCap(t *testing.T) {
	r := newTerminalRig(t, true, StreamLimits{Terminals: 2, Sockets: 1})
	var open []*websocket.Conn
	for i := range 2 {
		conn := r.open("/terminal/ws1?session_id=s1")
		write(t, conn, websocket.MessageText, []byte{'a' + byte(i)})
		readOutputFor(t, conn, string(rune('a'+i)))
		open = append(open, conn)
	}
	over := r.open("/terminal/ws1?session_id=s2")
	code, reason := closeOf(t, over)
	if code != websocket.StatusTryAgainLater || reason != "Too many terminals open on this workspace (at most 2)" {
		t.Errorf("third terminal: got %d %q, want 1013 naming the cap of 2", code, reason)
	}
	if len(r.term.requests()) != 2 {
		t.Errorf("terminals opened: %d, want 2", len(r.term.requests()))
	}
	_ = open[0].Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "a slot freed", func() bool { return r.api.streams.count("ws1", streamTerminal) == 1 })
	again := r.open("/terminal/ws1?session_id=s3")
	write(t, again, websocket.MessageText, []byte("z"))
	readOutputFor(t, again, "z")
}

// Shutdown closes open terminals with 1001 (detaching tmux) and refuses
// new ones the same way.
func TestTerminalShutdown(t *testing.T) {
	r := newTerminalRig(t, true, StreamLimits{})
	conn := r.open("/terminal/ws1?session_id=s1")
	write(t, conn, websocket.MessageText, []byte("x"))
	readOutputFor(t, conn, "x")

	done := make(chan struct{})
	go func() {
		r.api.Shutdown()
		close(done)
	}()
	if code, reason := closeOf(t, conn); code != websocket.StatusGoingAway || reason != "Server is shutting down" {
		t.Errorf("close: got %d %q, want 1001 %q", code, reason, "Server is shutting down")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	waitUntil(t, "the terminal detached", r.term.agent.Terminals()[0].Closed)

	late := r.open("/terminal/ws1?session_id=s1")
	if code, reason := closeOf(t, late); code != websocket.StatusGoingAway || reason != "Server is shutting down" {
		t.Errorf("after shutdown: got %d %q, want 1001", code, reason)
	}
}

// A flood of output arrives in few frames, none larger than the cap.
func TestTerminalBatchesAFlood(t *testing.T) {
	const total, piece = 1 << 20, 1 << 10
	r := newTerminalRig(t, true, StreamLimits{})
	r.term.agent.SetTTY(func(ctx context.Context, _ wire.Container, _ wire.TTYRequest, term *agenttest.Terminal) int {
		chunk := bytes.Repeat([]byte("y"), piece-1)
		chunk = append(chunk, '\n')
		for range total / piece {
			if _, err := term.Write(chunk); err != nil {
				return 1
			}
		}
		_, _ = io.WriteString(term, "END")
		<-ctx.Done()
		return 0
	})
	conn := r.open("/terminal/ws1?session_id=s1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, frames := 0, 0
	for got < total+3 {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("after %d bytes in %d frames: %v", got, frames, err)
		}
		if len(data) > terminalMaxFrame {
			t.Errorf("frame of %d bytes, want at most %d", len(data), terminalMaxFrame)
		}
		got += len(data)
		frames++
	}
	// 1024 terminal writes; unbatched they would be about as many frames.
	t.Logf("%d bytes in %d frames (from %d terminal writes)", got, frames, total/piece)
	if frames > total/piece/8 {
		t.Errorf("frames: got %d, want at most %d (an eighth of the writes)", frames, total/piece/8)
	}
}

// A client that stops reading is cut off after the write timeout; the
// terminal is detached and the slot freed.
func TestTerminalSlowClient(t *testing.T) {
	defer func(d time.Duration) { terminalWriteTimeout = d }(terminalWriteTimeout)
	terminalWriteTimeout = 200 * time.Millisecond
	r := newTerminalRig(t, true, StreamLimits{})
	r.term.agent.SetTTY(func(ctx context.Context, _ wire.Container, _ wire.TTYRequest, term *agenttest.Terminal) int {
		chunk := bytes.Repeat([]byte("z"), 32<<10)
		for ctx.Err() == nil {
			if _, err := term.Write(chunk); err != nil {
				return 1
			}
		}
		return 0
	})
	r.open("/terminal/ws1?session_id=s1") // never read
	waitUntil(t, "the terminal opened", func() bool { return len(r.term.agent.Terminals()) == 1 })
	waitUntil(t, "the terminal detached", r.term.agent.Terminals()[0].Closed)
	waitUntil(t, "the slot freed", func() bool { return r.api.streams.count("ws1", streamTerminal) == 0 })
}

func TestClientFrameKind(t *testing.T) {
	tests := []struct {
		name       string
		typ        websocket.MessageType
		head       []byte
		want       clientFrame
		rows, cols uint16
	}{
		{name: "resize", typ: websocket.MessageBinary, head: []byte{'r', 0, 24, 0, 80}, want: frameResize, rows: 24, cols: 80},
		{name: "big-endian", typ: websocket.MessageBinary, head: []byte{'r', 1, 2, 3, 4}, want: frameResize, rows: 0x0102, cols: 0x0304},
		{name: "largest", typ: websocket.MessageBinary, head: []byte{'r', 0xff, 0xff, 0xff, 0xff}, want: frameResize, rows: 65535, cols: 65535},
		{name: "zero size still a resize", typ: websocket.MessageBinary, head: []byte{'r', 0, 0, 0, 0}, want: frameResize},
		{name: "short r: ignored", typ: websocket.MessageBinary, head: []byte{'r', 0, 24, 0}, want: frameIgnored},
		{name: "lone r: ignored", typ: websocket.MessageBinary, head: []byte{'r'}, want: frameIgnored},
		{name: "other binary: input", typ: websocket.MessageBinary, head: []byte("hello"), want: frameInput},
		{name: "capital R: input", typ: websocket.MessageBinary, head: []byte{'R', 0, 24, 0, 80}, want: frameInput},
		{name: "empty binary: input", typ: websocket.MessageBinary, head: nil, want: frameInput},
		{name: "text r…: keystrokes", typ: websocket.MessageText, head: []byte("rm -r"), want: frameInput},
		{name: "text lone r", typ: websocket.MessageText, head: []byte("r"), want: frameInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, rows, cols := clientFrameKind(tt.typ, tt.head)
			if kind != tt.want || rows != tt.rows || cols != tt.cols {
				t.Errorf("got %v %dx%d, want %v %dx%d", kind, rows, cols, tt.want, tt.rows, tt.cols)
			}
		})
	}
}

// The batcher on a fake clock: output after a quiet interval goes out at
// once (an echo is never held back), output that follows a frame waits
// until interval after it, a full frame goes out at once.
func TestOutputBatcher(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at   int    // ms after t0
		add  string // output arriving; "" = a flush at `at`
		due  int    // for an add: when it should go out, ms after t0
		take string // for a flush: the frames written, joined by |
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "a keystroke's echo goes out at once", steps: []step{
			{at: 0, add: "x", due: 0}, {at: 0, take: "x"},
			{at: 500, add: "y", due: 500}, {at: 500, take: "y"},
		}},
		{name: "output right after a frame waits for the interval", steps: []step{
			{at: 0, add: "a", due: 0}, {at: 0, take: "a"},
			{at: 1, add: "b", due: 16}, {at: 5, add: "c", due: 16}, {at: 16, take: "bc"},
			{at: 17, add: "d", due: 32}, {at: 32, take: "d"},
		}},
		{name: "a quiet interval resets", steps: []step{
			{at: 0, add: "a", due: 0}, {at: 0, take: "a"},
			{at: 16, add: "b", due: 16}, {at: 16, take: "b"},
			{at: 40, add: "c", due: 40}, {at: 40, take: "c"},
		}},
		{name: "a full frame goes out at once, split at the cap", steps: []step{
			{at: 0, add: "a", due: 0}, {at: 0, take: "a"},
			{at: 1, add: "0123", due: 16}, {at: 2, add: "456789AB", due: 2}, {at: 2, take: "0123456789|AB"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := outputBatcher{interval: 16 * time.Millisecond, max: 10}
			for i, s := range tt.steps {
				if s.add != "" {
					if got := b.add([]byte(s.add), ms(s.at)); !got.Equal(ms(s.due)) {
						t.Errorf("step %d: add %q at %dms: due %v, want %dms", i, s.add, s.at, got.Sub(t0), s.due)
					}
					continue
				}
				var frames []string
				for len(b.pending) > 0 {
					frames = append(frames, string(b.take(ms(s.at))))
				}
				if got := strings.Join(frames, "|"); got != s.take {
					t.Errorf("step %d: flush at %dms: got %q, want %q", i, s.at, got, s.take)
				}
			}
		})
	}
}

// DELETE /terminal/{id}/session/{sid}: token only, 200 with one of the
// contract's four answers.
func TestKillTerminalSession(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		change func(f *fakeWorkspaces, term *fakeTerminal)
		want   sessionAnswer
	}{
		{name: "killed", path: "/terminal/ws1/session/s1", change: func(_ *fakeWorkspaces, term *fakeTerminal) {
			term.sessions["podex-s1"] = true
		}, want: sessionAnswer{"killed", "Session s1 killed"}},
		{name: "no such session", path: "/terminal/ws1/session/s1",
			want: sessionAnswer{"not_found", "Session s1 not found or already dead"}},
		{name: "no workspace", path: "/terminal/nope/session/s1",
			want: sessionAnswer{"not_found", "Workspace not found"}},
		{name: "server not available", path: "/terminal/ws1/session/s1", change: func(f *fakeWorkspaces, _ *fakeTerminal) {
			f.opErr["KillTerminalSession"] = orchestrator.ErrServerUnavailable
		}, want: sessionAnswer{"error", "Workspace server not available"}},
		{name: "the command failed", path: "/terminal/ws1/session/s1", change: func(f *fakeWorkspaces, _ *fakeTerminal) {
			f.opErr["KillTerminalSession"] = errors.New("docker exec failed")
		}, want: sessionAnswer{"not_found", "Session s1 not found or already dead"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			term := &fakeTerminal{sessions: map[string]bool{}}
			f.term = term
			if tt.change != nil {
				tt.change(f, term)
			}
			e := newTestEcho(f, testToken)
			want, _ := json.Marshal(tt.want)
			// No X-User-ID, and another user's workspace is fine.
			rec := req{method: http.MethodDelete, path: tt.path, header: map[string]string{headerUserID: ""}}.send(e)
			checkJSON(t, rec, http.StatusOK, string(want))
		})
	}

	t.Run("twice", func(t *testing.T) {
		f := newFake(aliceWS())
		f.term = &fakeTerminal{sessions: map[string]bool{"podex-s1": true}}
		e := newTestEcho(f, testToken)
		checkJSON(t, req{method: http.MethodDelete, path: "/terminal/ws1/session/s1"}.send(e), http.StatusOK,
			`{"status":"killed","message":"Session s1 killed"}`)
		checkJSON(t, req{method: http.MethodDelete, path: "/terminal/ws1/session/s1"}.send(e), http.StatusOK,
			`{"status":"not_found","message":"Session s1 not found or already dead"}`)
	})

	t.Run("token", func(t *testing.T) {
		e := newTestEcho(newFake(aliceWS()), testToken)
		checkJSON(t, req{method: http.MethodDelete, path: "/terminal/ws1/session/s1",
			header: map[string]string{headerServiceToken: ""}}.send(e), http.StatusUnauthorized, detail("Missing service token"))
		checkJSON(t, req{method: http.MethodDelete, path: "/terminal/ws1/session/s1",
			header: map[string]string{headerServiceToken: "nope"}}.send(e), http.StatusUnauthorized, detail("Invalid service token"))
	})
}
