package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The preview proxy (§3.20) and the WebSocket proxy (§3.22) end to end:
// the compose scheduler, an agent over mTLS, and a development server
// running in a real workspace container: the test app
// (scheduler/e2e/testapp) of the test-only image berth/workspace-test:dev,
// which `make test` builds and loads into the hosts.

const (
	previewImage = "berth/workspace-test:dev"
	previewPort  = 3000 // the port of /preview/{id}/app/
)

// previewBigSeed is the test app's bigSeed: /big streams this ChaCha8
// stream, so its hash is known without a second download.
var previewBigSeed = [32]byte{'b', 'e', 'r', 't', 'h'}

// needPreviewImage skips when the hosts lack the test image.
func needPreviewImage(t *testing.T) {
	t.Helper()
	for _, h := range hosts {
		if err := exec.Command("docker", "exec", hostContainer(t, h.id), "docker", "image", "inspect", previewImage).Run(); err != nil {
			t.Skipf("%s is not loaded on %s (make test loads it; or BERTH_TEST_IMAGES=1 make images run): %v", previewImage, h.id, err)
		}
	}
}

// startTestApp creates a workspace of the test image and starts the test
// app in it on previewPort, waiting until the port list shows it. The
// workspace is deleted when the test ends.
func startTestApp(t *testing.T, user string) (caller, info) {
	t.Helper()
	needCluster(t)
	needPreviewImage(t)
	k := composeAPI().as(user)
	ws := k.mustCreate(t, "s1", uniqueID("e2e-preview"), map[string]any{"tier": "starter", "repos": []string{},
		"base_image": previewImage})
	res := k.exec(t, ws.ID, map[string]any{"command": fmt.Sprintf(
		"setsid nohup testapp --port %d >/tmp/testapp.log 2>&1 </dev/null & echo started", previewPort)})
	if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "started" {
		t.Fatalf("start the test app: %+v", res)
	}
	token := composeAPI().anonymous().set("X-Internal-Service-Token", serviceToken())
	waitFor(t, 30*time.Second, "the test app in /preview/{id}/ports", func() (bool, string) {
		r := token.do(t, http.MethodGet, "/preview/"+ws.ID+"/ports", nil)
		var ports []struct {
			Port        int    `json:"port"`
			ProcessName string `json:"process_name"`
			State       string `json:"state"`
			Protocol    string `json:"protocol"`
			Label       string `json:"label"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &ports) != nil {
			return false, r.String()
		}
		for _, p := range ports {
			if p.Port == previewPort {
				return p.ProcessName == "testapp" && p.Label == "testapp" && p.State == "LISTEN" && p.Protocol == "http", r.String()
			}
		}
		return false, r.String()
	})
	return k, ws
}

func TestPreviewProxy(t *testing.T) {
	k, ws := startTestApp(t, "e2e-preview-user")
	app := "/preview/" + ws.ID + "/app" // k sends the token and X-User-ID, as the podex API's preview caller does

	t.Run("HTML gets the bridge once", func(t *testing.T) {
		r := k.do(t, http.MethodGet, app+"/", nil)
		body := string(r.body)
		if r.status != http.StatusOK || strings.Count(body, `data-podex-devtools="true"`) != 1 ||
			!strings.Contains(body, "Hello from the berth test app") {
			t.Fatalf("got %d %.300q, want the page with the bridge once", r.status, body)
		}
		if i, j := strings.Index(body, "<head>"), strings.Index(body, "<script data-podex-devtools"); j != i+len("<head>") {
			t.Errorf("the bridge is at %d, want right after <head> (%d)", j, i)
		}
		if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
			t.Errorf("Content-Length %q for %d bytes", cl, len(body))
		}
	})
	t.Run("JSON untouched", func(t *testing.T) {
		r := k.do(t, http.MethodGet, app+"/json", nil)
		if r.status != http.StatusOK || string(r.body) != `{"app":"berth-testapp","ok":true}` {
			t.Errorf("got %s", r)
		}
	})
	t.Run("POST body", func(t *testing.T) {
		r := k.set("Content-Type", "text/plain").do(t, http.MethodPost, app+"/echo", "a body for the app")
		if r.status != http.StatusOK || string(r.body) != "a body for the app" {
			t.Errorf("got %s", r)
		}
	})
	t.Run("internal headers never reach the app", func(t *testing.T) {
		r := k.set("X-Berth-Epoch", "1").set("X-Custom", "kept").do(t, http.MethodGet, "/preview/"+ws.ID+"/proxy/"+strconv.Itoa(previewPort)+"/headers?x=1", nil)
		var seen http.Header
		r.into(t, &seen)
		for name := range seen {
			if strings.EqualFold(name, "X-Internal-Service-Token") || strings.EqualFold(name, "X-User-ID") || strings.HasPrefix(strings.ToLower(name), "x-berth-") {
				t.Errorf("the app got %s: %q", name, seen.Values(name))
			}
		}
		if seen.Get("X-Custom") != "kept" || seen.Get("Accept-Encoding") != "identity" {
			t.Errorf("the app got X-Custom %q, Accept-Encoding %q; want kept, identity", seen.Get("X-Custom"), seen.Get("Accept-Encoding"))
		}
	})
	t.Run("100 MB streamed", func(t *testing.T) {
		const mb = 100
		want := sha256.New()
		if _, err := io.CopyN(want, rand.NewChaCha8(previewBigSeed), mb<<20); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp := k.open(t, http.MethodGet, app+"/big?mb="+strconv.Itoa(mb), nil)
		defer resp.Body.Close()
		got := sha256.New()
		n, err := io.CopyBuffer(got, resp.Body, make([]byte, 64<<10))
		took := time.Since(start)
		if err != nil || n != mb<<20 || resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d, %d bytes, %v; want 200 and %d bytes", resp.StatusCode, n, err, mb<<20)
		}
		if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("the body's hash differs from the app's stream")
		}
		t.Logf("%d MB through scheduler and agent in %s: %.0f MB/s", mb, took.Round(time.Millisecond), mb/took.Seconds())
	})
	t.Run("server-sent events one by one", func(t *testing.T) {
		resp := k.set("Accept", "text/event-stream").open(t, http.MethodGet, app+"/sse?n=3&ms=400", nil)
		defer resp.Body.Close()
		start := time.Now()
		var at []time.Duration
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				if want := "data: event " + strconv.Itoa(len(at)); line != want {
					t.Fatalf("got %q, want %q", line, want)
				}
				at = append(at, time.Since(start))
			}
		}
		if len(at) != 3 {
			t.Fatalf("got %d events, want 3", len(at))
		}
		// Each event arrives when the app sends it, not at the end.
		if at[2]-at[0] < 600*time.Millisecond {
			t.Errorf("events arrived at %v: buffered, want them 400 ms apart", at)
		}
	})
	t.Run("WebSocket echo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn := dialSocket(t, ctx, "/ws/"+ws.ID+"/"+strconv.Itoa(previewPort)+"/ws?q=1", "vite-hmr")
		if conn.Subprotocol() != "vite-hmr" {
			t.Errorf("subprotocol %q, want vite-hmr", conn.Subprotocol())
		}
		if _, hello, err := conn.Read(ctx); err != nil || string(hello) != "hello /ws  vite-hmr" {
			t.Fatalf("hello: got %q, %v; want the path, no query, vite-hmr", hello, err)
		}
		start := time.Now()
		for i := range 50 {
			typ, msg := websocket.MessageText, []byte("ping "+strconv.Itoa(i))
			if i%2 == 1 {
				typ, msg = websocket.MessageBinary, []byte{0xff, byte(i), 0}
			}
			if err := conn.Write(ctx, typ, msg); err != nil {
				t.Fatal(err)
			}
			gotTyp, got, err := conn.Read(ctx)
			if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d: got %v %q, %v; want %v %q", i, gotTyp, got, err, typ, msg)
			}
		}
		t.Logf("WebSocket echo round trip through scheduler and agent: %s", (time.Since(start) / 50).Round(time.Microsecond))
		conn.Close(websocket.StatusNormalClosure, "")
	})
	t.Run("closed port", func(t *testing.T) {
		r := k.do(t, http.MethodGet, "/preview/"+ws.ID+"/proxy/3999/", nil)
		if r.status != http.StatusBadGateway || r.detail() != "Could not connect to service on port 3999. Is the development server running?" {
			t.Errorf("got %s, want 502", r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, reason := socketClose(t, ctx, dialSocket(t, ctx, "/ws/"+ws.ID+"/3999"))
		if code != websocket.StatusPolicyViolation || reason != "Could not connect to port 3999" {
			t.Errorf("socket: got %d %q, want 1008", code, reason)
		}
	})
	t.Run("stopped workspace", func(t *testing.T) {
		if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/stop", nil); r.status != http.StatusNoContent {
			t.Fatalf("stop: %s", r)
		}
		r := k.do(t, http.MethodGet, app+"/", nil)
		if r.status != http.StatusServiceUnavailable || r.detail() != "Workspace "+ws.ID+" is not running" {
			t.Errorf("got %s, want 503", r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, reason := socketClose(t, ctx, dialSocket(t, ctx, "/ws/"+ws.ID+"/"+strconv.Itoa(previewPort)))
		if code != websocket.StatusPolicyViolation || reason != "Workspace is not running" {
			t.Errorf("socket: got %d %q, want 1008 Workspace is not running", code, reason)
		}
	})
}

// dialSocket opens a proxied WebSocket as the podex API would.
func dialSocket(t *testing.T, ctx context.Context, path string, subprotocols ...string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(schedulerURL, "http")+path, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPHeader: http.Header{"X-Internal-Service-Token": {serviceToken()}}, Subprotocols: subprotocols})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// socketClose reads until the socket closes and returns its close.
func socketClose(t *testing.T, ctx context.Context, conn *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("ended without a close: %v", err)
		}
		return ce.Code, ce.Reason
	}
}
