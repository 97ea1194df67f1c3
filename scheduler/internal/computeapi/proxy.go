package computeapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/auth"
)

// The preview proxy (§3.20): /preview/{id}/proxy/{port}/{path} and
// /preview/{id}/app/{path} (port 3000) pass a request to an app in the
// workspace's container and stream its answer back, through the agent of
// the workspace's server (orchestrator AppProxy, agentclient.Client.Proxy)
// over mTLS. Token only: no X-User-ID, no ownership check, and the id is
// not validated (an unknown one is simply not found). The stored status
// decides, without a sync.
//
// What reaches the app: the path after the route's prefix (its escaping
// kept) and the original query; the body only for POST, PUT and PATCH
// (streamed, never held); the caller's headers except the hop-by-hop ones
// (ReverseProxy drops them), X-Internal-Service-Token, X-User-ID and every
// X-Berth-* header (agentclient and the agent drop them, contract §14 #15),
// an Authorization header that carries the service token itself (the
// contract's alternative to X-Internal-Service-Token, §1.2); the caller's
// Accept-Encoding is replaced by "identity" (see appRequest). Redirects are not followed: a 30x is
// the answer. The app has 30 s to send its answer's headers (the agent's
// response-header timeout); a body may then stream for as long as it flows.
//
// What comes back: the app's status and headers (hop-by-hop ones dropped;
// Content-Encoding is kept with the body it describes: Python dropped it
// only because httpx had decoded the body, and we never decode); the body
// streamed and flushed as it comes (a 100 MB download or server-sent events
// are never held whole), except HTML, which gets the DevTools bridge
// (injectDevTools): an HTML answer of at most maxInjectBytes is read whole,
// rewritten and sent with its Content-Length recomputed; a bigger one, an
// encoded one (gzip) or the answer to a HEAD passes through untouched,
// never cut.

const (
	// appPort is the port of /preview/{id}/app/{path}: the default
	// development server's.
	appPort = 3000
	// maxInjectBytes bounds the HTML page read into memory to be rewritten.
	maxInjectBytes = 8 << 20
)

// proxyMethods are the methods the proxy routes accept; others get the
// framework's 405.
var proxyMethods = []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPost,
	http.MethodPut, http.MethodPatch, http.MethodDelete}

// registerProxy mounts the preview proxy and the WebSocket proxy
// (wsproxy.go). A route's {port} takes digits only, as Starlette's int
// convertor did: anything else is the framework's 404, before auth. The
// prefixes without their trailing slash answer 307 to the slashed path, as
// Starlette's redirect_slashes did, so that an app's relative links
// resolve below the prefix.
func (a *API) registerProxy(e *echo.Echo) {
	for _, m := range proxyMethods {
		e.Add(m, "/preview/:id/proxy/:port/*", a.proxyPort, intPort, a.tokenOnly, a.streaming)
		e.Add(m, "/preview/:id/app/*", a.proxyApp, a.tokenOnly, a.streaming)
		e.Add(m, "/preview/:id/proxy/:port", addSlash, intPort)
		e.Add(m, "/preview/:id/app", addSlash)
	}
	e.GET("/ws/:id/:port", a.socketProxy, intPort, webSocketOnly, a.socketToken, a.streaming)
	e.GET("/ws/:id/:port/*", a.socketProxy, intPort, webSocketOnly, a.socketToken, a.streaming)
}

// intPort answers 404 Not Found for a {port} that is not all digits.
func intPort(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Param("port")
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return echo.ErrNotFound
		}
		return next(c)
	}
}

// routePort is the route's {port} (intPort checked it is digits); a
// number too large for an int is out of range like any above 65535.
func routePort(c echo.Context) int {
	n, err := strconv.Atoi(c.Param("port"))
	if err != nil {
		return -1
	}
	return n
}

func validPort(port int) bool { return port >= 1 && port <= 65535 }

// addSlash redirects to the same path with a trailing slash (307 keeps
// the method and the body).
func addSlash(c echo.Context) error {
	u := url.URL{Path: c.Request().URL.Path + "/", RawPath: c.Request().URL.RawPath, RawQuery: c.Request().URL.RawQuery}
	if u.RawPath != "" {
		u.RawPath += "/"
	}
	return c.Redirect(http.StatusTemporaryRedirect, u.RequestURI())
}

// proxyPort is /preview/{id}/proxy/{port}/{path}.
func (a *API) proxyPort(c echo.Context) error {
	return a.proxy(c, routePort(c), 5)
}

// proxyApp is /preview/{id}/app/{path}.
func (a *API) proxyApp(c echo.Context) error {
	return a.proxy(c, appPort, 4)
}

// proxy serves one request for the app on port. prefixSegments is how many
// path segments the route's prefix has ("/preview/{id}/app" is 4 with the
// empty one before the first slash).
func (a *API) proxy(c echo.Context, port, prefixSegments int) error {
	id := c.Param("id")
	r := c.Request()
	ctx := r.Context()
	ws, err := a.d.Workspaces.Get(ctx, id)
	if err != nil {
		return a.proxyFailure(id, port, err)
	}
	a.d.Workspaces.NoteActivity(ws.ID) // preview traffic is use (idle stop)
	h, err := a.d.Workspaces.AppProxy(ctx, ws, port, agentclient.ProxyOptions{
		ModifyResponse: injectBridge,
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client left: there is no one to answer
			}
			ErrorHandler(a.proxyFailure(id, port, err), c)
		},
		ErrorLog: a.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	})
	if err != nil {
		return a.proxyFailure(id, port, err)
	}
	if !validPort(port) {
		return a.proxyFailure(id, port, errPortOutOfRange)
	}
	h.ServeHTTP(interimWriter{c.Response()}, a.appRequest(r, prefixSegments))
	return nil
}

// appRequest is the request the app gets: r's path after the route's
// prefix (escaped form kept), r's query, r's headers less the service
// credentials, and r's body for POST, PUT and PATCH only. The caller's
// Accept-Encoding is replaced by "identity" so that the app answers
// uncompressed HTML, which the proxy can rewrite. Dropping the header is
// not enough: an HTTP client with no Accept-Encoding asks for gzip on its
// own (Go's transport between scheduler and agent does), and the agent
// would pass that on. Other answers come uncompressed too, which costs
// bandwidth between agent and scheduler, not correctness.
func (a *API) appRequest(r *http.Request, prefixSegments int) *http.Request {
	rawPath := appPath(r, prefixSegments)
	path, err := url.PathUnescape(rawPath)
	if err != nil { // the server parsed the request line: cannot happen
		path = rawPath
	}
	out := r.Clone(r.Context())
	out.URL = &url.URL{Path: path, RawPath: rawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	out.Header.Set("Accept-Encoding", "identity")
	if a.isServiceCredential(out.Header.Get("Authorization")) {
		out.Header.Del("Authorization")
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		out.Body, out.ContentLength, out.TransferEncoding = http.NoBody, 0, nil
		out.Header.Del("Content-Length")
	}
	return out
}

// appPath is the app's path of a proxied request, escaped: what follows
// the route's prefix of prefixSegments segments, "/" when nothing does.
func appPath(r *http.Request, prefixSegments int) string {
	parts := strings.SplitN(r.URL.EscapedPath(), "/", prefixSegments+1)
	if len(parts) <= prefixSegments {
		return "/"
	}
	return "/" + parts[prefixSegments]
}

// isServiceCredential reports whether an Authorization value is the
// service token as a bearer token: the caller's credential for us, never
// the app's.
func (a *API) isServiceCredential(authorization string) bool {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	return ok && auth.Match(token, a.d.ServiceToken, a.d.ServiceTokenNext)
}

// injectBridge puts the DevTools bridge into an HTML answer of at most
// maxInjectBytes (ProxyOptions.ModifyResponse); it leaves every other
// answer as it is. Reading stops one byte past the bound: a bigger page is
// passed on whole, the bytes read first and then the rest as it streams.
func injectBridge(resp *http.Response) error {
	if resp.Request.Method == http.MethodHead || !isHTML(resp.Header.Get("Content-Type")) || !hasBody(resp.StatusCode) ||
		resp.ContentLength > maxInjectBytes {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil // compressed: the bytes are not HTML we can rewrite
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, maxInjectBytes+1))
	if err != nil {
		return fmt.Errorf("%w: reading the app's HTML: %v", agentclient.ErrUpstream, err)
	}
	if len(page) > maxInjectBytes {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(page), resp.Body), resp.Body}
		return nil
	}
	if err := resp.Body.Close(); err != nil {
		return fmt.Errorf("%w: reading the app's HTML: %v", agentclient.ErrUpstream, err)
	}
	page = injectDevTools(page)
	resp.Body = io.NopCloser(bytes.NewReader(page))
	resp.ContentLength = int64(len(page))
	resp.TransferEncoding = nil
	resp.Header.Set("Content-Length", strconv.Itoa(len(page)))
	return nil
}

// hasBody reports whether an answer with this status may carry a body.
func hasBody(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// interimWriter hands the reverse proxy echo's response, except for
// interim (1xx) answers such as 103 Early Hints, which echo would take for
// the final one; they go to the connection's writer directly.
type interimWriter struct{ *echo.Response }

func (w interimWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.Writer.WriteHeader(code)
		return
	}
	w.Response.WriteHeader(code)
}
