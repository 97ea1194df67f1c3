package agenttest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/agent/agenttest"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// dialTTY opens a terminal over mTLS as the scheduler does.
func (c *client) dialTTY(ctx context.Context, id string, req wire.TTYRequest) *websocket.Conn {
	c.t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	ws, _, err := websocket.Dial(ctx, c.base+"/v1/containers/"+id+wire.SuffixTTY, &websocket.DialOptions{ //nolint:bodyclose // Dial closes the handshake answer itself
		HTTPClient: c.http, HTTPHeader: http.Header{wire.HeaderTTYRequest: {string(raw)}},
	})
	if err != nil {
		c.t.Fatalf("dial tty: %v", err)
	}
	c.t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// The terminal hook and its record work through the real API over mTLS;
// closing the agent ends an open terminal with 1001.
func TestTTYHookAndClose(t *testing.T) {
	a, c := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctr := c.create(createReq)
	a.SetTTY(func(ctx context.Context, _ wire.Container, req wire.TTYRequest, term *agenttest.Terminal) int {
		_, _ = io.WriteString(term, "hello "+req.User+"\r\n")
		<-ctx.Done()
		return 0
	})
	ws := c.dialTTY(ctx, ctr.ID, wire.TTYRequest{Cmd: []string{"bash"}, User: "dev", Rows: 24, Cols: 80})
	if _, p, err := ws.Read(ctx); err != nil || string(p) != "hello dev\r\n" {
		t.Fatalf("output: got %q, %v", p, err)
	}
	terms := a.Terminals()
	if len(terms) != 1 || terms[0].Size() != (agenttest.TermSize{Rows: 24, Cols: 80}) {
		t.Fatalf("terminals: got %d, want one of 24x80", len(terms))
	}
	read := make(chan error, 1) // the scheduler keeps reading, as a relay does
	go func() { _, _, err := ws.Read(ctx); read <- err }()
	a.Close()
	if err := <-read; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after Close: got %v, want close 1001", err)
	}
	testutil.Eventually(t, 5*time.Second, "the terminal is closed", terms[0].Closed)
}

// The proxy reaches the test's own server through SetAddress's address.
func TestProxyToTheTestsServer(t *testing.T) {
	a, c := setup(t)
	ctr := c.create(createReq)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app "+r.URL.Path+" user="+r.Header.Get(wire.HeaderUserID))
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	path := "/v1/containers/" + ctr.ID + wire.SuffixProxy + "/" + u.Port() + "/index.html"
	res := c.do(http.MethodGet, path, nil, wire.HeaderUserID, "u1")
	if res.status != http.StatusOK || string(res.body) != "app /index.html user=" {
		t.Errorf("got %d %q, want the app's answer without the user header", res.status, res.body)
	}
	a.SetAddress("")
	if res := c.do(http.MethodGet, path, nil); res.status != http.StatusConflict || res.code(t) != wire.CodeNotRunning {
		t.Errorf("without an address: got %d %s, want 409 not_running", res.status, res.body)
	}
}

// StartWith bounds the streams: here the app's answer headers.
func TestStartWith(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := agenttest.StartWith(t, pki, "ws-1", agenttest.StreamConfig{ProxyResponseHeaderTimeout: 100 * time.Millisecond})
	c := newClient(t, pki, a, wire.RoleScheduler)
	ctr := c.create(createReq)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	res := c.do(http.MethodGet, "/v1/containers/"+ctr.ID+wire.SuffixProxy+"/"+u.Port()+"/", nil)
	if res.status != http.StatusGatewayTimeout || res.code(t) != wire.CodeUpstreamTimeout {
		t.Errorf("got %d %s, want 504 upstream_timeout", res.status, res.body)
	}
}
