package agentclient_test

// The stream calls end to end: this package's client → the real agent
// binary over mTLS → the machine's real Docker → a workspace container
// (a terminal in it, and an HTTP app in it reached at its bridge address).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/agentproc"
	"berth/shared/testutil"
	"berth/shared/wire"
)

const testAppPort = 8080

// startAppContainer starts a workspace container whose main process is
// testhttpd (agent/internal/docker/testdata) on testAppPort, bind-mounted from
// the agent's data directory: the workspace image has no HTTP server.
func startAppContainer(t *testing.T, a *agentproc.Agent) wire.Container {
	t.Helper()
	ctx := ctxT(t)
	imgs, err := a.Client.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, img := range imgs {
		for _, tag := range img.Tags {
			found = found || tag == agentproc.Image()
		}
	}
	if !found {
		t.Skipf("image %s is not in the local daemon: build it with `make images`", agentproc.Image())
	}
	dir := filepath.Join(a.DataDir, "testbin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "testhttpd"), "berth/agent/internal/docker/testdata/testhttpd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testhttpd: %v\n%s", err, out)
	}
	name := fmt.Sprintf("berth-test-%d", time.Now().UnixNano())
	ctr, err := a.Client.Create(ctx, wire.CreateContainerRequest{
		Name: name, Image: agentproc.Image(), Start: true, Epoch: 2, WorkspaceID: "ws-" + name[11:],
		Cmd:    []string{"/opt/berth-test/testhttpd", "-addr", fmt.Sprintf(":%d", testAppPort)},
		Mounts: []wire.Mount{{Source: "testbin", Target: "/opt/berth-test", ReadOnly: true}},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { a.Client.Remove(context.Background(), ctr.ID, true) })
	return ctr
}

func TestAgentProcessStreams(t *testing.T) {
	a := agentproc.Start(t, "ws-streams")
	ctr := startAppContainer(t, a)
	ctx := agentclient.WithEpoch(ctxT(t), 2)

	t.Run("terminal: bash evaluates input, follows resizes, reports its exit", func(t *testing.T) {
		tty, err := a.Client.TTY(ctx, ctr.ID, wire.TTYRequest{
			Cmd: []string{"bash", "--norc", "--noprofile", "-i"}, User: "dev", Rows: 24, Cols: 80,
			Env: map[string]string{"PS1": "$ "},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		send := func(s string) {
			if _, err := io.WriteString(tty, s); err != nil {
				t.Fatal(err)
			}
		}
		send("echo hi-$((40+2)) $(id -un)\r")
		readTTYUntil(t, tty, "hi-42 dev\r\n")
		send("stty size\r")
		readTTYUntil(t, tty, "24 80\r\n")
		if err := tty.Resize(ctx, 50, 132); err != nil {
			t.Fatal(err)
		}
		send("stty size\r")
		readTTYUntil(t, tty, "50 132\r\n")
		send("exit 4\r")
		if _, err := io.ReadAll(tty); err != nil {
			t.Fatalf("output after exit: %v, want io.EOF", err)
		}
		if code, exited := tty.ExitCode(); !exited || code != 4 {
			t.Errorf("ExitCode: got %d %v, want 4 true", code, exited)
		}
	})

	t.Run("terminal: a stale epoch is refused", func(t *testing.T) {
		_, err := a.Client.TTY(agentclient.WithEpoch(ctx, 1), ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}})
		if !errors.Is(err, agentclient.ErrStaleEpoch) {
			t.Errorf("got %v, want ErrStaleEpoch", err)
		}
	})

	var mu sync.Mutex
	var failures []error
	h := a.Client.Proxy(ctr.ID, testAppPort, agentclient.ProxyOptions{
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	})
	front := servePreview(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(agentclient.WithEpoch(r.Context(), 2)))
	}))
	testutil.Eventually(t, 15*time.Second, "the app in the container answers through the proxy", func() bool {
		resp, err := http.Get(front + "/echo")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	mu.Lock()
	for _, err := range failures { // before the app listened
		if !errors.Is(err, agentclient.ErrUpstreamRefused) {
			t.Errorf("while the app started: got %v, want only ErrUpstreamRefused", err)
		}
	}
	failures = nil
	mu.Unlock()

	t.Run("proxy: method, path, query and body reach the app", func(t *testing.T) {
		resp, err := http.Post(front+"/echo?x=1", "text/plain", strings.NewReader("ping"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if want := "POST /echo?x=1\nping"; string(body) != want {
			t.Errorf("got %q, want %q", body, want)
		}
	})

	t.Run("proxy: internal headers never reach the app", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, front+"/headers", nil)
		req.Header.Set(wire.HeaderServiceToken, "secret")
		req.Header.Set(wire.HeaderUserID, "user-1")
		req.Header.Set("X-Custom", "kept")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got http.Header
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{wire.HeaderServiceToken, wire.HeaderUserID, wire.HeaderEpoch} {
			if v := got.Values(name); len(v) != 0 {
				t.Errorf("the app got %s: %q", name, v)
			}
		}
		if got.Get("X-Custom") != "kept" {
			t.Errorf("the app's headers: %v, want X-Custom", got)
		}
		if host := got.Get("Host"); !strings.HasSuffix(host, fmt.Sprintf(":%d", testAppPort)) {
			t.Errorf("Host: got %q, want the container's address", host)
		}
	})

	t.Run("proxy: server-sent events flow as the app writes them", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, front+"/sse", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "data: 1\n" {
			t.Errorf("got %q, %v, want the first event while the stream is open", line, err)
		}
	})

	t.Run("WebSocket to the app", func(t *testing.T) {
		conn, err := a.Client.DialWebSocket(ctx, ctr.ID, testAppPort, "/ws", []string{"echo"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		checkSocketEcho(t, ctx, conn)
		conn.Close(websocket.StatusNormalClosure, "")
	})

	t.Run("WebSocket to a port nobody listens on", func(t *testing.T) {
		_, err := a.Client.DialWebSocket(ctx, ctr.ID, testAppPort+1, "/ws", nil)
		if !errors.Is(err, agentclient.ErrUpstreamRefused) {
			t.Errorf("got %v, want ErrUpstreamRefused", err)
		}
	})

	t.Run("proxy: a stopped container is not running", func(t *testing.T) {
		if err := a.Client.Stop(ctx, ctr.ID, time.Second); err != nil {
			t.Fatal(err)
		}
		var got error
		ph := a.Client.Proxy(ctr.ID, testAppPort, agentclient.ProxyOptions{
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) { got = err },
		})
		ph.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/echo", nil))
		if !errors.Is(got, agentclient.ErrNotRunning) {
			t.Errorf("got %v, want ErrNotRunning", got)
		}
	})
}
