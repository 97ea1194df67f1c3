package computeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/shared/wire"
)

// fakeApp is the app the fake's AppProxy and DialApp reach: a test server,
// proxied directly (no agent), or a failure the agent would report.
type fakeApp struct {
	base      *url.URL
	transport *http.Transport // no compression of its own, as the agent's
	serveErr  error           // the proxy handler reports it to ErrorHandler instead of proxying
	dialErr   error           // DialApp fails with it

	mu    sync.Mutex
	ports []int       // the ports AppProxy and DialApp were asked for
	dials [][2]string // DialApp's path and subprotocols (comma-joined)
}

// newFakeApp serves h for the test.
func newFakeApp(t *testing.T, h http.Handler) *fakeApp {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &fakeApp{base: u, transport: tr}
}

func (a *fakeApp) proxy(port int, opts agentclient.ProxyOptions) http.Handler {
	a.mu.Lock()
	a.ports = append(a.ports, port)
	a.mu.Unlock()
	if a.serveErr != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { opts.ErrorHandler(w, r, a.serveErr) })
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = a.base.Scheme, a.base.Host
			pr.Out.URL.Path, pr.Out.URL.RawPath, pr.Out.URL.RawQuery = pr.In.URL.Path, pr.In.URL.RawPath, pr.In.URL.RawQuery
			pr.Out.Host = ""
		},
		Transport:      a.transport,
		FlushInterval:  -1,
		ModifyResponse: opts.ModifyResponse,
		ErrorHandler:   opts.ErrorHandler,
	}
}

func (a *fakeApp) dial(ctx context.Context, port int, path string, subprotocols []string) (*websocket.Conn, error) {
	a.mu.Lock()
	a.ports = append(a.ports, port)
	a.dials = append(a.dials, [2]string{path, strings.Join(subprotocols, ",")})
	a.mu.Unlock()
	if a.dialErr != nil {
		return nil, a.dialErr
	}
	conn, _, err := websocket.Dial(ctx, "ws://"+a.base.Host+path, &websocket.DialOptions{Subprotocols: subprotocols}) //nolint:bodyclose // Dial closes the handshake answer itself
	return conn, err
}

func (a *fakeApp) askedPorts() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.ports...)
}

// seen is what the test app's /echo route received.
type seen struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	RawPath string      `json:"raw_path"`
	Query   string      `json:"query"`
	Header  http.Header `json:"header"`
	Body    string      `json:"body"`
}

const testPage = "<!DOCTYPE html><html><head><title>t</title></head><body>hello</body></html>"

// testAppHandler is the app of the unit tests.
func testAppHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { // echoes the request
		body, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
			h.Set("X-Seen-Length", fmt.Sprint(r.ContentLength))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(),
			Query: r.URL.RawQuery, Header: h, Body: string(body)})
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-App", "yes")
		io.WriteString(w, testPage)
	})
	mux.HandleFunc("/marked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<html><head><script data-podex-devtools="true"></script></head></html>`)
	})
	mux.HandleFunc("/xhtml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xhtml+xml")
		io.WriteString(w, `<html xmlns="http://www.w3.org/1999/xhtml"><body>x</body></html>`)
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"html":"<head></head>"}`)
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "\x1f\x8bnot really gzip <head>")
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><head></head><body>")
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 9 {
			w.Write(chunk)
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere?from=app", http.StatusFound)
	})
	mux.HandleFunc("/not-modified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/ws", wsEcho)
	return mux
}

// proxyRig is the API over the fake with alice's running workspace ws1
// (and a stopped ws2, a container-less ws3) and the test app; change, if
// set, adjusts the API before its routes are mounted.
type proxyRig struct {
	f   *fakeWorkspaces
	app *fakeApp
	api *API
	e   *echo.Echo
}

func newProxyRig(t *testing.T, change func(*API)) *proxyRig {
	t.Helper()
	stopped, bare := aliceWS(), aliceWS()
	stopped.ID, stopped.Status = "ws2", fleet.StatusStopped
	bare.ID, bare.ContainerID = "ws3", ""
	f := newFake(aliceWS(), stopped, bare)
	f.app = newFakeApp(t, testAppHandler())
	api := New(Deps{Workspaces: f, ServiceToken: testToken, Log: hclog.NewNullLogger()})
	if change != nil {
		change(api)
	}
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler
	api.Register(e)
	t.Cleanup(api.Shutdown)
	return &proxyRig{f: f, app: f.app, api: api, e: e}
}

func (p *proxyRig) send(r req) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	hr.Header.Set(headerServiceToken, testToken)
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	p.e.ServeHTTP(rec, hr)
	return rec
}

// The failures of §3.20 and our own, each with its status and detail.
func TestProxyFailures(t *testing.T) {
	tooMany := "Too many open connections to workspace ws1: its server allows at most BERTH_PROXY_MAX_CONNS (default 256) proxied requests per workspace at once. Try again later."
	tests := []struct {
		name       string
		req        req
		serveErr   error // the agent's failure, reported by the proxy handler
		opErr      error // AppProxy's own failure
		wantStatus int
		wantBody   string // "" for no body
	}{
		{name: "no token", req: req{method: "GET", path: "/preview/ws1/app/", header: map[string]string{headerServiceToken: ""}},
			wantStatus: 401, wantBody: detail("Missing service token")},
		{name: "wrong token", req: req{method: "GET", path: "/preview/ws1/proxy/8080/x", header: map[string]string{headerServiceToken: "nope"}},
			wantStatus: 401, wantBody: detail("Invalid service token")},
		{name: "unknown workspace", req: req{method: "GET", path: "/preview/nope/app/"},
			wantStatus: 404, wantBody: detail("Workspace nope not found")},
		{name: "unknown workspace, id not validated", req: req{method: "GET", path: "/preview/a.b/proxy/3000/"},
			wantStatus: 404, wantBody: detail("Workspace a.b not found")},
		{name: "stopped workspace", req: req{method: "POST", path: "/preview/ws2/app/x", body: "{}"},
			wantStatus: 503, wantBody: detail("Workspace ws2 is not running")},
		{name: "no container", req: req{method: "GET", path: "/preview/ws3/app/"},
			wantStatus: 500, wantBody: detail("Workspace ws3 has no container")},
		{name: "refused on the app port", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 502, Code: wire.CodeUpstreamRefused, Message: "dial tcp: connection refused"},
			wantStatus: 502, wantBody: detail("Could not connect to service on port 3000. Is the development server running?")},
		{name: "refused on another port", req: req{method: "DELETE", path: "/preview/ws1/proxy/8080/api"},
			serveErr:   &agentclient.Error{Status: 502, Code: wire.CodeUpstreamRefused},
			wantStatus: 502, wantBody: detail("Could not connect to service on port 8080. Is the development server running?")},
		{name: "port out of range", req: req{method: "GET", path: "/preview/ws1/proxy/70000/"},
			wantStatus: 502, wantBody: detail("Could not connect to service on port 70000. Is the development server running?")},
		{name: "port 0", req: req{method: "GET", path: "/preview/ws1/proxy/0/"},
			wantStatus: 502, wantBody: detail("Could not connect to service on port 0. Is the development server running?")},
		{name: "timeout", req: req{method: "GET", path: "/preview/ws1/app/slow"},
			serveErr:   &agentclient.Error{Status: 504, Code: wire.CodeUpstreamTimeout},
			wantStatus: 504, wantBody: detail("Request timed out")},
		{name: "container stopped under the agent", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 409, Code: wire.CodeNotRunning},
			wantStatus: 503, wantBody: detail("Workspace ws1 is not running")},
		{name: "container gone", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 404, Code: wire.CodeNotFound},
			wantStatus: 503, wantBody: detail("Workspace ws1 is not running")},
		{name: "agent's connection cap", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 429, Code: wire.CodeTooManyConnections},
			wantStatus: 429, wantBody: detail(tooMany)},
		{name: "agent unreachable", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   fmt.Errorf("%w: %w: srv-1: dial tcp: refused", orchestrator.ErrServerUnavailable, agentclient.ErrUnreachable),
			wantStatus: 502, wantBody: detail("Workspace server not available")},
		{name: "server unknown before anything is sent", req: req{method: "GET", path: "/preview/ws1/app/"},
			opErr:      fmt.Errorf("%w: server srv-1 not found", orchestrator.ErrServerUnavailable),
			wantStatus: 502, wantBody: detail("Workspace server not available")},
		{name: "stale epoch", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 409, Code: wire.CodeStaleEpoch},
			wantStatus: 502, wantBody: detail("Workspace server not available")},
		{name: "other upstream failure", req: req{method: "GET", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 502, Code: wire.CodeUpstreamError, Message: "upstream failed: EOF"},
			wantStatus: 500, wantBody: detail("Proxy error: the service on port 3000 failed before it answered")},
		{name: "HEAD gets the status without a body", req: req{method: "HEAD", path: "/preview/ws1/app/"},
			serveErr:   &agentclient.Error{Status: 504, Code: wire.CodeUpstreamTimeout},
			wantStatus: 504},
		{name: "a port that is no int: the framework's 404, before auth", req: req{method: "GET", path: "/preview/ws1/proxy/http/",
			header: map[string]string{headerServiceToken: ""}}, wantStatus: 404, wantBody: detail("Not Found")},
		{name: "a method not served", req: req{method: "TRACE", path: "/preview/ws1/app/"},
			wantStatus: 405, wantBody: detail("Method Not Allowed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxyRig(t, nil)
			p.app.serveErr = tt.serveErr
			p.f.opErr["AppProxy"] = tt.opErr
			checkJSON(t, p.send(tt.req), tt.wantStatus, tt.wantBody)
		})
	}
}

// The prefixes without a trailing slash redirect to it (Starlette's
// redirect_slashes), before auth, keeping the query.
func TestProxyAddsSlash(t *testing.T) {
	p := newProxyRig(t, nil)
	for path, want := range map[string]string{
		"/preview/ws1/app":             "/preview/ws1/app/",
		"/preview/ws1/proxy/8080?a=1":  "/preview/ws1/proxy/8080/?a=1",
		"/preview/a%2Fb/proxy/8080":    "/preview/a%2Fb/proxy/8080/",
		"/preview/nope/app?next=%2Fx+": "/preview/nope/app/?next=%2Fx+",
	} {
		rec := p.send(req{method: "POST", path: path, header: map[string]string{headerServiceToken: ""}})
		if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != want {
			t.Errorf("%s: got %d to %q, want 307 to %q", path, rec.Code, rec.Header().Get("Location"), want)
		}
	}
}

// What the app receives: path (escaping kept) and query; the body for
// POST, PUT and PATCH only; the headers less the service credential in
// Authorization, with Accept-Encoding identity. No X-User-ID is needed.
func TestProxyRequest(t *testing.T) {
	tests := []struct {
		name     string
		req      req
		wantPort int
		want     seen
		gone     []string          // headers the app must not see
		kept     map[string]string // headers the app must see
	}{
		{name: "GET with path and query", req: req{method: "GET", path: "/preview/ws1/proxy/8080/a%2Fb/c%20d?x=1&y=%2F",
			header: map[string]string{"Accept-Encoding": "gzip, br", "X-Custom": "v", "Cookie": "s=1", headerUserID: ""}},
			wantPort: 8080, want: seen{Method: "GET", Path: "/a/b/c d", RawPath: "/a%2Fb/c%20d", Query: "x=1&y=%2F"},
			kept: map[string]string{"Accept-Encoding": "identity", "X-Custom": "v", "Cookie": "s=1"}},
		{name: "app route root", req: req{method: "GET", path: "/preview/ws1/app/"}, wantPort: 3000,
			want: seen{Method: "GET", Path: "/", RawPath: "/"}},
		{name: "POST body forwarded", req: req{method: "POST", path: "/preview/ws1/app/submit", body: `{"a":1}`,
			header: map[string]string{"Content-Type": "application/json"}}, wantPort: 3000,
			want: seen{Method: "POST", Path: "/submit", RawPath: "/submit", Body: `{"a":1}`}, kept: map[string]string{"Content-Type": "application/json"}},
		{name: "PUT body forwarded", req: req{method: "PUT", path: "/preview/ws1/app/x", body: "data"}, wantPort: 3000,
			want: seen{Method: "PUT", Path: "/x", RawPath: "/x", Body: "data"}},
		{name: "PATCH body forwarded", req: req{method: "PATCH", path: "/preview/ws1/app/x", body: "data"}, wantPort: 3000,
			want: seen{Method: "PATCH", Path: "/x", RawPath: "/x", Body: "data"}},
		{name: "DELETE body dropped", req: req{method: "DELETE", path: "/preview/ws1/app/x", body: "data"}, wantPort: 3000,
			want: seen{Method: "DELETE", Path: "/x", RawPath: "/x"}, gone: []string{"X-Seen-Length"}},
		{name: "GET body dropped", req: req{method: "GET", path: "/preview/ws1/app/x", body: "data"}, wantPort: 3000,
			want: seen{Method: "GET", Path: "/x", RawPath: "/x"}, gone: []string{"X-Seen-Length"}},
		{name: "OPTIONS", req: req{method: "OPTIONS", path: "/preview/ws1/app/x"}, wantPort: 3000,
			want: seen{Method: "OPTIONS", Path: "/x", RawPath: "/x"}},
		{name: "bearer service token: authenticates, never forwarded", req: req{method: "GET", path: "/preview/ws1/app/",
			header: map[string]string{headerServiceToken: "", "Authorization": "Bearer " + testToken}}, wantPort: 3000,
			want: seen{Method: "GET", Path: "/", RawPath: "/"}, gone: []string{"Authorization"}},
		{name: "the app's own Authorization passes", req: req{method: "GET", path: "/preview/ws1/app/",
			header: map[string]string{"Authorization": "Bearer app-user-token"}}, wantPort: 3000,
			want: seen{Method: "GET", Path: "/", RawPath: "/"}, kept: map[string]string{"Authorization": "Bearer app-user-token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxyRig(t, nil)
			rec := p.send(tt.req)
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			var got seen
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.gone {
				if v := got.Header.Values(h); len(v) > 0 {
					t.Errorf("the app got %s: %q", h, v)
				}
			}
			for h, v := range tt.kept {
				if g := got.Header.Get(h); g != v {
					t.Errorf("the app got %s %q, want %q", h, g, v)
				}
			}
			got.Header = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("the app's request (-want +got):\n%s", diff)
			}
			if ports := p.app.askedPorts(); len(ports) != 1 || ports[0] != tt.wantPort {
				t.Errorf("ports: got %v, want [%d]", ports, tt.wantPort)
			}
			if n := p.f.activityOf("ws1"); n != 1 {
				t.Errorf("use of ws1 noted %d times, want once per request (idle stop)", n)
			}
		})
	}
}

// HTML gets the bridge once, with Content-Length recomputed; everything
// else passes as the app sent it.
func TestProxyResponse(t *testing.T) {
	injected := string(injectDevTools([]byte(testPage)))
	tests := []struct {
		name       string
		req        req
		wantStatus int
		wantBody   string
		wantLen    int               // the body's length, when wantBody is not given
		wantHeader map[string]string // and these headers
	}{
		{name: "HTML", req: req{method: "GET", path: "/preview/ws1/app/page"}, wantStatus: 200, wantBody: injected,
			wantHeader: map[string]string{"Content-Type": "text/html; charset=utf-8", "X-App": "yes"}},
		{name: "HTML through a port", req: req{method: "GET", path: "/preview/ws1/proxy/4000/page"}, wantStatus: 200, wantBody: injected},
		{name: "XHTML", req: req{method: "GET", path: "/preview/ws1/app/xhtml"}, wantStatus: 200,
			wantBody: string(injectDevTools([]byte(`<html xmlns="http://www.w3.org/1999/xhtml"><body>x</body></html>`)))},
		{name: "marked already", req: req{method: "GET", path: "/preview/ws1/app/marked"}, wantStatus: 200,
			wantBody: `<html><head><script data-podex-devtools="true"></script></head></html>`},
		{name: "JSON untouched", req: req{method: "GET", path: "/preview/ws1/app/json"}, wantStatus: 200,
			wantBody: `{"html":"<head></head>"}`},
		{name: "encoded HTML untouched", req: req{method: "GET", path: "/preview/ws1/app/gzip"}, wantStatus: 200,
			wantBody: "\x1f\x8bnot really gzip <head>", wantHeader: map[string]string{"Content-Encoding": "gzip"}},
		{name: "HTML over 8 MiB passed whole, untouched", req: req{method: "GET", path: "/preview/ws1/app/huge"}, wantStatus: 200,
			wantLen: len("<html><head></head><body>") + 9<<20},
		{name: "HEAD of HTML", req: req{method: "HEAD", path: "/preview/ws1/app/page"}, wantStatus: 200, wantBody: ""},
		{name: "304", req: req{method: "GET", path: "/preview/ws1/app/not-modified"}, wantStatus: 304, wantBody: ""},
		{name: "redirect not followed", req: req{method: "GET", path: "/preview/ws1/app/redirect"}, wantStatus: 302,
			wantLen: -1, wantHeader: map[string]string{"Location": "/elsewhere?from=app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxyRig(t, nil)
			rec := p.send(tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", rec.Code, tt.wantStatus)
			}
			body := rec.Body.String()
			switch {
			case tt.wantLen > 0:
				if len(body) != tt.wantLen || strings.Contains(body, devtoolsMarker) {
					t.Errorf("body: got %d bytes (marker: %v), want %d untouched", len(body), strings.Contains(body, devtoolsMarker), tt.wantLen)
				}
			case tt.wantLen == 0 && body != tt.wantBody:
				t.Errorf("body: got %q, want %q", shorten([]byte(body)), shorten([]byte(tt.wantBody)))
			}
			if n := strings.Count(body, devtoolsMarker); n > 1 {
				t.Errorf("the marker is in the body %d times", n)
			}
			if cl := rec.Header().Get("Content-Length"); cl != "" && tt.req.method != "HEAD" && cl != fmt.Sprint(len(body)) {
				t.Errorf("Content-Length %s for a body of %d", cl, len(body))
			}
			for h, v := range tt.wantHeader {
				if got := rec.Header().Get(h); got != v {
					t.Errorf("header %s: got %q, want %q", h, got, v)
				}
			}
		})
	}
}

// The error detail of a proxy failure for a workspace that the fake does
// not reach at all (no record): the orchestrator is never asked.
func TestProxyAsksNothingForUnknown(t *testing.T) {
	p := newProxyRig(t, nil)
	p.send(req{method: "GET", path: "/preview/nope/app/"})
	if ports := p.app.askedPorts(); len(ports) != 0 {
		t.Errorf("the app was reached for an unknown workspace: %v", ports)
	}
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	for _, c := range p.f.calls {
		if strings.HasPrefix(c, "Sync") {
			t.Errorf("the proxy synced the status: %v", p.f.calls)
		}
	}
}
