package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"berth/agent/internal/docker"
	"berth/shared/wire"
)

// proxyMethods are the methods the proxy route accepts (the compute
// service's preview methods; a WebSocket upgrade is a GET).
var proxyMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPost,
	http.MethodPut, http.MethodPatch, http.MethodDelete,
}

// forwardedHeaders are passed on as the scheduler set them: it is the
// only one who knows the user's host and scheme. (ReverseProxy drops them
// otherwise.)
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

// newProxyTransport is the agent's client of the containers' apps: plain
// HTTP to a bridge address, no environment proxy, no TLS (so no client
// certificate of the agent's can ever be presented to an app), no
// transparent decompression, and every connection under the idle timeout.
func newProxyTransport(cfg StreamConfig) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.ProxyDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newIdleConn(conn, cfg.ProxyIdleTimeout), nil
		},
		ResponseHeaderTimeout: cfg.ProxyResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		DisableCompression:    true,
	}
}

// inspectedKey holds the container checkEpoch inspected for this request.
const inspectedKey = "server.inspected"

// address is where the proxy dials the container: from the fence's inspect
// of this request when there was one (one Docker call per proxied request,
// not two), else asked of Docker.
func (s *Server) address(c echo.Context, id string) (string, error) {
	if ctr, ok := c.Get(inspectedKey).(wire.Container); ok {
		return docker.AddressOf(ctr)
	}
	return s.docker.Address(c.Request().Context(), id)
}

// proxy serves /containers/:id/proxy/:port/*: the request goes to the
// container's app at its bridge address and the answer streams back
// (contract in shared/wire/streams.go).
func (s *Server) proxy(c echo.Context) error {
	port, err := strconv.Atoi(c.Param("port"))
	if err != nil || port < 1 || port > 65535 {
		return badRequest(fmt.Sprintf("proxy: port %q: want 1-65535", c.Param("port")))
	}
	r := c.Request()
	rawPath := upstreamPath(r.URL.EscapedPath())
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return badRequest("proxy: path: " + err.Error())
	}
	id := c.Param("id")
	addr, err := s.address(c, id)
	if err != nil {
		return notRunning(err)
	}
	release, ok := s.proxyConns.acquire(addr, s.cfg.ProxyMaxConns)
	if !ok {
		return fmt.Errorf("%w: %s has %d open", errTooManyConnections, short(id), s.cfg.ProxyMaxConns)
	}
	defer release()
	ctx, done, ok := s.streams.open(r.Context())
	if !ok {
		return errShuttingDown
	}
	defer done()
	s.streamsOpen.WithLabelValues("proxy").Inc()
	defer s.streamsOpen.WithLabelValues("proxy").Dec()

	target := net.JoinHostPort(addr, strconv.Itoa(port))
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", target
			pr.Out.URL.Path, pr.Out.URL.RawPath = path, rawPath
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.Out.Host = ""
			for name := range pr.Out.Header {
				if wire.IsInternalHeader(name) {
					delete(pr.Out.Header, name)
				}
			}
			for _, name := range forwardedHeaders {
				if v, ok := pr.In.Header[name]; ok {
					pr.Out.Header[name] = v
				}
			}
		},
		Transport:     s.proxyTransport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			for name := range resp.Header {
				if strings.HasPrefix(strings.ToLower(name), strings.ToLower(wire.HeaderPrefixInternal)) {
					delete(resp.Header, name)
				}
			}
			return nil
		},
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) {
			if ctx.Err() != nil { // the scheduler left, or the agent is stopping
				s.log.Debug("proxied request ended", "id", short(id), "port", port, "error", err)
				return
			}
			s.handleError(upstreamError(err), c)
		},
		ErrorLog: s.debugLog,
	}
	// The request body may still be flowing in while the answer flows out
	// (a long upload with progress, a streaming RPC): HTTP/1 needs leave.
	_ = http.NewResponseController(c.Response()).EnableFullDuplex()
	rp.ServeHTTP(interimWriter{c.Response()}, r.WithContext(ctx))
	return nil
}

// upstreamPath is the escaped path after …/{id}/proxy/{port}, "/" when
// there is none.
func upstreamPath(escaped string) string {
	n := strings.Count(wire.PathContainers, "/") + 3 // the segments up to {port}
	parts := strings.SplitN(escaped, "/", n+2)
	if len(parts) < n+2 {
		return "/"
	}
	return "/" + parts[n+1]
}

// upstreamError classifies a failure to reach the app.
func upstreamError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: %w", errUpstreamRefused, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", errUpstreamTimeout, err)
	}
	return fmt.Errorf("%w: %w", errUpstream, err)
}

// interimWriter hands ReverseProxy the echo response, except for interim
// (1xx) answers such as 103 Early Hints, which echo would take for the
// final one.
type interimWriter struct{ *echo.Response }

func (w interimWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.Writer.WriteHeader(code)
		return
	}
	w.Response.WriteHeader(code)
}

// idleConn closes a connection on which no byte moved, either way, for
// timeout: a read or write that waits that long fails with
// os.ErrDeadlineExceeded. A read that waits while the other direction is
// busy goes on waiting.
type idleConn struct {
	net.Conn
	timeout time.Duration
	last    atomic.Int64 // unix nanos of the last byte moved
}

func newIdleConn(c net.Conn, timeout time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	ic := &idleConn{Conn: c, timeout: timeout}
	ic.touch()
	return ic
}

func (c *idleConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *idleConn) idleUntil() time.Time { return time.Unix(0, c.last.Load()).Add(c.timeout) }

func (c *idleConn) Read(p []byte) (int, error) {
	for {
		if err := c.SetReadDeadline(c.idleUntil()); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.touch()
		}
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(c.idleUntil()) {
			continue // the other direction moved meanwhile: not idle
		}
		return n, err
	}
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.touch()
	if err := c.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}
