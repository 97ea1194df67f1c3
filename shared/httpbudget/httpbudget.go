// Package httpbudget bounds what one connection may cost a berth HTTP
// server (the scheduler's listener, the agent's mTLS API): how long its
// request headers and body may take to arrive, how long its answer may take
// to leave, how long it may sit idle between requests, how big its headers
// may be. A slow-headers or slow-body client (slowloris) is cut when its
// time is up; an idle keep-alive connection is closed after Idle.
//
// Routes whose exchange is long by nature (event streams, exec output,
// proxies, WebSockets, file and archive transfers) are taken off the
// whole-request bounds deliberately, route by route, with Streaming: they
// are bounded by progress instead (Stall per read and per write).
package httpbudget

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"berth/shared/envflag"

	"github.com/labstack/echo/v4"
)

// Timeouts are a server's connection budgets.
type Timeouts struct {
	// ReadHeader bounds the request line and headers, from the first byte.
	ReadHeader time.Duration
	// Read bounds a request's whole body, from the end of its headers. Once
	// the body has been read to its end the handler may run on: the bound
	// is lifted (net/http's own ReadTimeout would cancel the request's
	// context of a handler that runs longer, which is why it is not used).
	Read time.Duration
	// Write bounds the handler and its answer, from the end of the
	// request's headers (http.Server.WriteTimeout).
	Write time.Duration
	// Idle closes a keep-alive connection that sends no new request.
	Idle time.Duration
	// Stall bounds each read of a streaming route's body and each write of
	// its answer (Streaming): a transfer may last hours, but a peer that
	// stops sending or reading for Stall is cut.
	Stall time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 beyond).
	MaxHeaderBytes int
}

// Default returns the defaults of both servers (README, "Request
// budgets").
func Default() Timeouts {
	return Timeouts{
		ReadHeader:     10 * time.Second,
		Read:           60 * time.Second,
		Write:          10 * time.Minute,
		Idle:           2 * time.Minute,
		Stall:          2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
}

// Bounds of MaxHeaderBytes.
const (
	MinHeaderBytes = 4 << 10
	MaxHeaderBytes = 1 << 20
)

// Validate reports every problem at once; env names the settings' prefix
// for the messages (e.g. "BERTH_HTTP_").
func (t Timeouts) Validate(env string) error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"READ_HEADER_TIMEOUT", t.ReadHeader}, {"READ_TIMEOUT", t.Read}, {"WRITE_TIMEOUT", t.Write},
		{"IDLE_TIMEOUT", t.Idle}, {"STALL_TIMEOUT", t.Stall}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s%s %s: must be positive", env, d.name, d.v))
		}
	}
	if t.MaxHeaderBytes < MinHeaderBytes || t.MaxHeaderBytes > MaxHeaderBytes {
		errs = append(errs, fmt.Errorf("%sMAX_HEADER_BYTES %d: want %d to %d", env, t.MaxHeaderBytes, MinHeaderBytes, MaxHeaderBytes))
	}
	return errors.Join(errs...)
}

// Server returns a server of h with the budgets applied (the body bound
// through Handler). The caller sets TLSConfig, ErrorLog and the like.
func (t Timeouts) Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           t.Handler(h),
		ReadHeaderTimeout: t.ReadHeader,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
	}
}

// Handler puts the body bound on every request of h: a request with a body
// must deliver all of it within Read of its headers' end (a slow body is
// cut: the read fails, the connection is closed); a request without one
// has no read deadline while its handler runs. Server applies it.
func (t Timeouts) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Without a body there is nothing to do: with no ReadTimeout on the
		// server, net/http clears the read deadline after the headers.
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(t.Read))
			// On a copy: the server's own request keeps its body, so that
			// after the handler it still knows how much is left unread
			// (and closes the connection rather than read on).
			r = r.WithContext(r.Context())
			r.Body = &body{ReadCloser: r.Body, rc: rc}
		}
		h.ServeHTTP(w, r)
	})
}

// body lifts the read deadline once the request's body has been read to
// its end, so that the server's background read (which notices a client
// that hangs up) does not time out and cancel a handler that runs long.
// In stall mode each Read has its own deadline.
type body struct {
	io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration // > 0: streaming (Streaming)
	ended bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.stall > 0 && !b.ended {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.stall))
	}
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.ended {
		b.ended = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Refuse is for a handler about to refuse r (an error answer) without
// reading its body to the end: the connection closes after the answer,
// and nothing more of the body is read. (net/http would otherwise read up
// to 256 KiB of the rest, to keep the connection alive.) It does nothing
// to a request whose body Handler does not bound or that was read whole.
func Refuse(w http.ResponseWriter, r *http.Request) {
	b, ok := r.Body.(*body)
	if !ok || b.ended {
		return
	}
	w.Header().Set("Connection", "close")
	_ = b.rc.SetReadDeadline(time.Now()) // the server's discard of the rest fails at once
}

// Streaming takes a long-lived route off the whole-request bounds: its
// body (if Handler wrapped it) is bounded per read by Stall instead of
// Read in all, and its answer per write (and flush) by Stall instead of
// Write in all. A WebSocket upgrade (hijack) clears the deadlines itself;
// the connection is then bounded by the route's own pings and idle
// timeouts.
func (t Timeouts) Streaming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := t.Stream(w, r)
		defer sw.Arm() // the server's own last flush after the handler
		next.ServeHTTP(sw, r)
	})
}

// EchoStreaming is Streaming as echo middleware. It swaps the writer under
// echo's own Response (echo.WrapMiddleware would wrap a second Response
// around it, which would take a 1xx answer for the final one).
func (t Timeouts) EchoStreaming(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		w := t.Stream(c.Response().Writer, c.Request())
		c.Response().Writer = w
		defer w.Arm()
		return next(c)
	}
}

// OrDefault is t, or Default when t has no stall bound (a zero Timeouts:
// a caller that set none).
func (t Timeouts) OrDefault() Timeouts {
	if t.Stall <= 0 {
		return Default()
	}
	return t
}

// Stream is Streaming for one request, for routers with their own
// middleware: answer through the writer it returns, and call its Arm when
// the handler is done.
func (t Timeouts) Stream(w http.ResponseWriter, r *http.Request) *StallWriter {
	rc := http.NewResponseController(w)
	if b, ok := r.Body.(*body); ok {
		b.stall = t.Stall
	}
	_ = rc.SetWriteDeadline(time.Time{})
	return &StallWriter{ResponseWriter: w, rc: rc, stall: t.Stall}
}

// StallWriter gives each write and flush its own deadline (Stream).
type StallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

// Arm sets the write deadline Stall from now: for the writes the server
// makes itself after the handler returns.
func (w *StallWriter) Arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.stall)) }

func (w *StallWriter) Write(p []byte) (int, error) {
	w.Arm()
	return w.ResponseWriter.Write(p)
}

func (w *StallWriter) FlushError() error {
	w.Arm()
	return w.rc.Flush()
}

func (w *StallWriter) Flush() { _ = w.FlushError() }

func (w *StallWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.rc.Hijack() }

func (w *StallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Keys are the settings of t, the same on every server:
// BERTH_HTTP_READ_HEADER_TIMEOUT, BERTH_HTTP_READ_TIMEOUT,
// BERTH_HTTP_WRITE_TIMEOUT, BERTH_HTTP_IDLE_TIMEOUT,
// BERTH_HTTP_STALL_TIMEOUT (durations, or seconds) and
// BERTH_HTTP_MAX_HEADER_BYTES.
func Keys(t *Timeouts) []envflag.Key {
	return []envflag.Key{
		{Env: EnvPrefix + "READ_HEADER_TIMEOUT", Flag: "http-read-header-timeout", Help: "HTTP: bound on a request's line and headers", Set: envflag.Duration(&t.ReadHeader)},
		{Env: EnvPrefix + "READ_TIMEOUT", Flag: "http-read-timeout", Help: "HTTP: bound on a request's whole body, after its headers (streaming routes: per read, see stall)", Set: envflag.Duration(&t.Read)},
		{Env: EnvPrefix + "WRITE_TIMEOUT", Flag: "http-write-timeout", Help: "HTTP: bound on a handler and its answer (streaming routes: per write, see stall)", Set: envflag.Duration(&t.Write)},
		{Env: EnvPrefix + "IDLE_TIMEOUT", Flag: "http-idle-timeout", Help: "HTTP: close a keep-alive connection idle this long", Set: envflag.Duration(&t.Idle)},
		{Env: EnvPrefix + "STALL_TIMEOUT", Flag: "http-stall-timeout", Help: "HTTP: streaming routes: cut a body read or an answer write that makes no progress this long", Set: envflag.Duration(&t.Stall)},
		{Env: EnvPrefix + "MAX_HEADER_BYTES", Flag: "http-max-header-bytes", Help: "HTTP: largest request line and headers, bytes", Set: envflag.Int(&t.MaxHeaderBytes)},
	}
}

// EnvPrefix starts the names of the settings (Keys).
const EnvPrefix = "BERTH_HTTP_"
