package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"berth/agent/internal/docker/dockerfake"
	"berth/agent/internal/server"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// ttyHeader is the handshake header carrying req.
func ttyHeader(t *testing.T, req wire.TTYRequest) http.Header {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{wire.HeaderTTYRequest: {string(raw)}}
}

// dialTTY opens the TTY stream of container id, failing the test if the
// upgrade is refused.
func (r *rig) dialTTY(ctx context.Context, id string, req wire.TTYRequest) *websocket.Conn {
	r.t.Helper()
	ws, resp, err := websocket.Dial(ctx, r.url+ctrPath(id, wire.SuffixTTY), &websocket.DialOptions{HTTPHeader: ttyHeader(r.t, req)}) //nolint:bodyclose // Dial closes the handshake answer itself
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		r.t.Fatalf("dial tty: %v (status %d)", err, status)
	}
	r.t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// readOutput reads binary messages until it holds want, and returns what
// it read; it fails the test on any other message or an error.
func readOutput(t *testing.T, ctx context.Context, ws *websocket.Conn, want string) string {
	t.Helper()
	var got bytes.Buffer
	for !strings.Contains(got.String(), want) {
		typ, p, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read output (have %q, want %q): %v", got.String(), want, err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("got a %v message %q, want binary output", typ, p)
		}
		got.Write(p)
	}
	return got.String()
}

func resizeMsg(t *testing.T, rows, cols uint16) []byte {
	t.Helper()
	raw, err := json.Marshal(wire.TTYControl{Type: wire.TTYControlResize, Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The default fake TTY echoes: input comes back as output; resizes reach
// the terminal; closing from the scheduler's side ends the session.
func TestTTYEchoResizeClose(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	ws := r.dialTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"bash"}, User: "dev", Rows: 24, Cols: 80})

	if err := ws.Write(ctx, websocket.MessageBinary, []byte("echo hi\r")); err != nil {
		t.Fatal(err)
	}
	readOutput(t, ctx, ws, "echo hi\r")

	if err := ws.Write(ctx, websocket.MessageText, resizeMsg(t, 40, 120)); err != nil {
		t.Fatal(err)
	}
	terms := r.fake.Terminals()
	if len(terms) != 1 {
		t.Fatalf("terminals: got %d, want 1", len(terms))
	}
	term := terms[0]
	select {
	case got := <-term.Resized():
		if want := (dockerfake.Size{Rows: 40, Cols: 120}); got != want {
			t.Errorf("resize: got %v, want %v", got, want)
		}
	case <-ctx.Done():
		t.Fatal("no resize reached the terminal")
	}
	if diff := cmp.Diff(wire.TTYRequest{Cmd: []string{"bash"}, User: "dev", Rows: 24, Cols: 80}, term.Req); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	// An unknown control message is ignored: the stream goes on.
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"paste-mode"}`)); err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("more")); err != nil {
		t.Fatal(err)
	}
	readOutput(t, ctx, ws, "more")

	if err := ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the terminal is closed", term.Closed)
}

// When the process exits, its last output arrives, then the close with
// 1000 "exit <code>".
func TestTTYExit(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	r.fake.SetTTY(func(_ context.Context, _ wire.Container, _ wire.TTYRequest, term *dockerfake.Terminal) int {
		line := make([]byte, 5)
		if _, err := io.ReadFull(term, line); err != nil {
			return 1
		}
		_, _ = io.WriteString(term, "logout\r\n")
		return 3
	})
	ws := r.dialTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"bash"}})
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("exit\r")); err != nil {
		t.Fatal(err)
	}
	readOutput(t, ctx, ws, "logout\r\n")
	_, _, err := ws.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "exit 3" {
		t.Errorf("after the output: got %v, want close 1000 \"exit 3\"", err)
	}
	if code, ok := wire.ParseTTYExitReason(ce.Reason); !ok || code != 3 {
		t.Errorf("ParseTTYExitReason(%q): got %d %v, want 3 true", ce.Reason, code, ok)
	}
}

// Stopping the container under an open terminal ends the stream with the
// killed process's exit code.
func TestTTYContainerStops(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	ws := r.dialTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"bash"}})
	if a := r.do(http.MethodPost, ctrPath(c.ID, "/stop"), nil); a.status != http.StatusNoContent {
		t.Fatalf("stop: status %d", a.status)
	}
	_, _, err := ws.Read(ctx)
	if got, want := websocket.CloseStatus(err), websocket.StatusNormalClosure; got != want {
		t.Fatalf("close status: got %v (%v), want %v", got, err, want)
	}
	var ce websocket.CloseError
	if errors.As(err, &ce); ce.Reason != wire.TTYExitReason(dockerfake.KilledTTYExitCode) {
		t.Errorf("reason: got %q, want %q", ce.Reason, wire.TTYExitReason(dockerfake.KilledTTYExitCode))
	}
}

// A control message that is not JSON closes the stream with 1003.
func TestTTYInvalidControl(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	ws := r.dialTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"bash"}})
	if err := ws.Write(ctx, websocket.MessageText, []byte("resize 40 120")); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusUnsupportedData {
		t.Errorf("got %v, want close 1003", err)
	}
}

// A scheduler that stops reading does not make the agent buffer: the
// output write gives up after the write timeout and the session ends.
func TestTTYBackpressure(t *testing.T) {
	r := newRigWith(t, server.StreamConfig{WriteTimeout: 300 * time.Millisecond})
	ctx := testContext(t)
	c := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true})
	var written atomic.Int64
	ended := make(chan struct{})
	r.fake.SetTTY(func(ctx context.Context, _ wire.Container, _ wire.TTYRequest, term *dockerfake.Terminal) int {
		defer close(ended)
		chunk := bytes.Repeat([]byte("x"), 16<<10)
		for ctx.Err() == nil {
			n, err := term.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return 1
			}
		}
		return 0
	})
	r.dialTTY(ctx, c.ID, wire.TTYRequest{Cmd: []string{"yes"}}) // and never read
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("the session still runs 10s after the scheduler stopped reading (%d bytes written)", written.Load())
	}
	// What is in flight: the socket buffers of both ends and one chunk.
	t.Logf("written before the session ended: %d bytes", written.Load())
	if got := written.Load(); got > 64<<20 {
		t.Errorf("the process wrote %d bytes into a stream nobody read; want it held back", got)
	}
	if term := r.fake.Terminals()[0]; !term.Closed() {
		t.Error("the terminal was not closed")
	}
}

// Failures before the upgrade are ordinary JSON errors.
func TestTTYRefused(t *testing.T) {
	r := newRig(t)
	running := r.create(wire.CreateContainerRequest{Name: "ws", Image: "img", Start: true, Epoch: 5})
	stopped := r.create(wire.CreateContainerRequest{Name: "stopped", Image: "img"})
	valid, _ := json.Marshal(wire.TTYRequest{Cmd: []string{"bash"}})
	upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	tests := []struct {
		name       string
		id         string
		header     []string
		wantStatus int
		wantCode   string
	}{
		{"no request header", running.ID, upgrade, http.StatusBadRequest, wire.CodeBadRequest},
		{"request not JSON", running.ID, append([]string{wire.HeaderTTYRequest, "bash"}, upgrade...), http.StatusBadRequest, wire.CodeBadRequest},
		{"unknown request field", running.ID, append([]string{wire.HeaderTTYRequest, `{"cmd":["bash"],"tty":true}`}, upgrade...), http.StatusBadRequest, wire.CodeBadRequest},
		{"no command", running.ID, append([]string{wire.HeaderTTYRequest, `{"cmd":[]}`}, upgrade...), http.StatusBadRequest, wire.CodeBadRequest},
		{"not a WebSocket", running.ID, []string{wire.HeaderTTYRequest, string(valid)}, http.StatusBadRequest, wire.CodeBadRequest},
		{"stopped container", stopped.ID, append([]string{wire.HeaderTTYRequest, string(valid)}, upgrade...), http.StatusConflict, wire.CodeNotRunning},
		{"missing container", "nope", append([]string{wire.HeaderTTYRequest, string(valid)}, upgrade...), http.StatusNotFound, wire.CodeNotFound},
		{"stale epoch", running.ID, append([]string{wire.HeaderTTYRequest, string(valid), wire.HeaderEpoch, "4"}, upgrade...), http.StatusConflict, wire.CodeStaleEpoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.do(http.MethodGet, ctrPath(tt.id, wire.SuffixTTY), nil, tt.header...)
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
	if n := len(r.fake.Terminals()); n != 0 {
		t.Errorf("terminals opened by refused requests: %d, want 0", n)
	}
}
