package orchestrator_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
)

// appRig is a rig with a running workspace w1 on ws-1 and an app on a
// port of 127.0.0.1 (where agenttest's proxy reaches every container):
// "/" answers "app <path>", "/ws" is a WebSocket echo.
func appRig(t *testing.T) (*rig, registry.Workspace, int) {
	t.Helper()
	r := newRig(t, 4, "ws-1")
	// w0 first, so that w1's epoch is above 1 and an older one is still
	// sent (epoch 0 is none).
	if _, err := r.orch.Create(context.Background(), createReq("w0", "u1")); err != nil {
		t.Fatal(err)
	}
	ws, err := r.orch.Create(context.Background(), createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	if ws.Epoch < 2 {
		t.Fatalf("w1's epoch is %d, want at least 2", ws.Epoch)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, q *http.Request) { io.WriteString(w, "app "+q.URL.Path) })
	mux.HandleFunc("/ws", func(w http.ResponseWriter, q *http.Request) {
		conn, err := websocket.Accept(w, q, &websocket.AcceptOptions{Subprotocols: []string{"p1"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		typ, msg, err := conn.Read(q.Context())
		if err == nil {
			conn.Write(q.Context(), typ, msg)
		}
		conn.Close(websocket.StatusNormalClosure, "")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return r, ws, p
}

func TestAppProxy(t *testing.T) {
	ctx := context.Background()
	r, ws, port := appRig(t)
	var got error
	opts := agentclient.ProxyOptions{ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
		got = err
		w.WriteHeader(599)
	}}
	run := func(ws registry.Workspace, port int) (*httptest.ResponseRecorder, error) {
		t.Helper()
		got = nil
		h, err := r.orch.AppProxy(ctx, ws, port, opts)
		if err != nil {
			return nil, err
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/some/page", nil))
		return rec, got
	}

	rec, err := run(ws, port)
	if err != nil || rec.Code != 200 || rec.Body.String() != "app /some/page" {
		t.Fatalf("running workspace: got %v %v, want the app's answer", rec, err)
	}

	tests := []struct {
		name string
		ws   func() registry.Workspace
		port int
		want []error
	}{
		{"nothing on the port", func() registry.Workspace { return ws }, testutil.FreePort(t), []error{agentclient.ErrUpstreamRefused}},
		{"an older placement's epoch", func() registry.Workspace { old := ws; old.Epoch--; return old }, port, []error{agentclient.ErrStaleEpoch}},
		{"stored status stopped", func() registry.Workspace { s := ws; s.Status = fleet.StatusStopped; return s }, port, []error{orchestrator.ErrNotRunning}},
		{"no container", func() registry.Workspace { s := ws; s.ContainerID = ""; return s }, port, []error{orchestrator.ErrNoContainer}},
		{"unknown server", func() registry.Workspace { s := ws; s.ServerID = "ws-9"; return s }, port, []error{orchestrator.ErrServerUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(tt.ws(), tt.port)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("got %v, want %v", err, want)
				}
			}
		})
	}

	t.Run("agent gone", func(t *testing.T) {
		r.agents["ws-1"].Close()
		_, err := run(ws, port)
		if !errors.Is(err, orchestrator.ErrServerUnavailable) || !errors.Is(err, agentclient.ErrUnreachable) {
			t.Errorf("got %v, want ErrServerUnavailable (unreachable)", err)
		}
	})
}

func TestDialApp(t *testing.T) {
	r, ws, port := appRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	conn, err := r.orch.DialApp(ctx, ws, port, "/ws", []string{"p1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if conn.Subprotocol() != "p1" {
		t.Errorf("subprotocol: got %q, want p1", conn.Subprotocol())
	}
	if err := conn.Write(ctx, websocket.MessageBinary, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if typ, msg, err := conn.Read(ctx); err != nil || typ != websocket.MessageBinary || string(msg) != "\x01\x02" {
		t.Errorf("echo: got %v %q %v", typ, msg, err)
	}

	tests := []struct {
		name string
		ws   registry.Workspace
		port int
		path string
		want error
	}{
		{"nothing on the port", ws, testutil.FreePort(t), "/ws", agentclient.ErrUpstreamRefused},
		{"no WebSocket at the path", ws, port, "/plain", agentclient.ErrUpstreamHandshake},
		{"stored status stopped", func() registry.Workspace { s := ws; s.Status = fleet.StatusStopped; return s }(), port, "/ws", orchestrator.ErrNotRunning},
		{"no server", func() registry.Workspace { s := ws; s.ServerID = ""; return s }(), port, "/ws", orchestrator.ErrNoContainer},
		{"an older placement's epoch", func() registry.Workspace { s := ws; s.Epoch--; return s }(), port, "/ws", agentclient.ErrStaleEpoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := r.orch.DialApp(ctx, tt.ws, tt.port, tt.path, nil)
			if err == nil {
				conn.CloseNow()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("agent gone", func(t *testing.T) {
		r.agents["ws-1"].Close()
		_, err := r.orch.DialApp(ctx, ws, port, "/ws", nil)
		if !errors.Is(err, orchestrator.ErrServerUnavailable) {
			t.Errorf("got %v, want ErrServerUnavailable", err)
		}
	})
}
