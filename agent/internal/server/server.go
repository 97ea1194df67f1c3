package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"berth/agent/internal/docker"
	"berth/agent/internal/homes"
	"berth/shared/version"
	"berth/shared/wire"
)

// Docker is what the API needs of the Docker adapter.
type Docker interface {
	Ping(ctx context.Context) error
	Info(ctx context.Context) (wire.DockerInfo, error)
	Create(ctx context.Context, req wire.CreateContainerRequest) (wire.Container, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string, force bool) error
	Inspect(ctx context.Context, id string) (wire.Container, error)
	List(ctx context.Context) ([]wire.Container, error)
	Exec(ctx context.Context, id string, req wire.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, bool, error)
	ExecTTY(ctx context.Context, id string, req wire.TTYRequest) (docker.TTY, error)
	Address(ctx context.Context, id string) (string, error)
	Stats(ctx context.Context, id string) (wire.ContainerStats, error)
	Update(ctx context.Context, id string, res wire.Resources) error
	Images(ctx context.Context) ([]wire.Image, error)
	Pull(ctx context.Context, ref string, progress func(wire.PullProgress)) error
	Events(ctx context.Context) (<-chan wire.ContainerEvent, <-chan error)
	RemoveData(rel string) error
}

// Server is the agent API. It is safe for concurrent use.
type Server struct {
	serverID string
	docker   Docker
	capacity func() wire.Capacity
	cfg      StreamConfig
	log      hclog.Logger
	debugLog *log.Logger // log at debug level, for the standard library's logging
	echo     *echo.Echo
	handler  http.Handler // echo, possibly wrapped (Wrap)

	lastContact atomic.Int64                    // unix nanos of the last request from the scheduler
	homes       *Homes                          // nil: the home transfer routes answer 501
	eventLog    EventLog                        // nil: the event log route answers 501
	checkPeer   func([]*x509.Certificate) error // CheckPeers; nil: the handshake's verification only

	streams        *streams        // TTY sessions and proxied requests being served
	proxyConns     connLimiter     // proxied requests open per container
	proxyTransport *http.Transport // the agent's client of the containers' apps

	metrics      *prometheus.Registry
	reqDuration  *prometheus.HistogramVec
	dockerErrors *prometheus.CounterVec
	streamsOpen  *prometheus.GaugeVec
}

// New builds the API. capacity returns the latest capacity sample; streams
// bounds the TTY and proxy streams (zero fields take the defaults; see
// StreamConfig.Validate).
func New(serverID string, d Docker, capacity func() wire.Capacity, streams StreamConfig, log hclog.Logger) *Server {
	cfg := streams.withDefaults()
	s := &Server{serverID: serverID, docker: d, capacity: capacity, cfg: cfg, log: log, echo: echo.New(),
		debugLog:       log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		streams:        newStreams(),
		proxyTransport: newProxyTransport(cfg),
	}
	s.handler = s.echo
	s.lastContact.Store(time.Now().UnixNano()) // the lease starts with the agent
	s.initMetrics()
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.authorize, s.noteContact, s.instrument)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{})))
	e.GET(wire.PathHealth, s.health)
	e.GET(wire.PathCapacity, s.getCapacity)
	e.GET(wire.PathInfo, s.info)
	e.GET(wire.PathContainers, s.list)
	e.POST(wire.PathContainers, s.create)
	c := e.Group(wire.PathContainers+"/:id", s.checkEpoch)
	c.GET("", s.inspect)
	c.DELETE("", s.remove)
	c.POST("/start", s.start)
	c.POST("/stop", s.stop)
	// Long by nature, so off the whole-request timeouts (streaming): the
	// execs (bounded by their own timeout), the terminal, the proxy, the
	// pull and event streams, the home transfers (homes.go).
	c.POST("/exec", s.exec, s.streaming)
	c.POST(wire.SuffixExecRaw, s.execRaw, s.streaming) // execraw.go
	c.GET("/stats", s.stats)
	c.POST("/update", s.update)
	c.GET(wire.SuffixTTY, s.tty, s.streaming)
	c.Match(proxyMethods, wire.SuffixProxy+"/:port", s.proxy, s.streaming)
	c.Match(proxyMethods, wire.SuffixProxy+"/:port/*", s.proxy, s.streaming)
	e.GET(wire.PathImages, s.images)
	e.POST(wire.PathImagePull, s.pull, s.streaming)
	e.GET(wire.PathEvents, s.events, s.streaming)
	e.GET(wire.PathEventLog, s.eventsSince)
	e.DELETE(wire.PathData, s.removeData)
	s.registerHomes(e)
	return s
}

// initMetrics registers the agent's Prometheus instruments. /metrics is
// served on the mTLS API like every other route: scrape it with a
// certificate of the cluster CA carrying the scheduler role.
func (s *Server) initMetrics() {
	s.metrics = prometheus.NewRegistry()
	s.reqDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "berth_agent_http_request_duration_seconds", Help: "Agent API requests by route, method and status.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	}, []string{"route", "method", "code"})
	s.dockerErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_agent_docker_errors_total", Help: "Requests that failed in the local dockerd, by route.",
	}, []string{"route"})
	s.streamsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "berth_agent_streams_open", Help: "TTY sessions and proxied requests being served, by kind (tty, proxy).",
	}, []string{"kind"})
	s.metrics.MustRegister(s.reqDuration, s.dockerErrors, s.streamsOpen, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func (s *Server) instrument(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // write the answer now, so its status is known
			if errors.Is(err, docker.ErrDocker) || errors.Is(err, docker.ErrTimeout) || errors.Is(err, docker.ErrStartFailed) {
				s.dockerErrors.WithLabelValues(c.Path()).Inc()
			}
		}
		s.reqDuration.WithLabelValues(c.Path(), c.Request().Method, strconv.Itoa(c.Response().Status)).Observe(time.Since(start).Seconds())
		return nil
	}
}

// LastContact is when the scheduler last called (any authenticated request;
// the listener accepts no one else).
func (s *Server) LastContact() time.Time { return time.Unix(0, s.lastContact.Load()) }

// noteContact records the scheduler's requests for the fence lease; a peer
// agent's do not count.
func (s *Server) noteContact(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if isScheduler(c.Request()) {
			s.lastContact.Store(time.Now().UnixNano())
		}
		return next(c)
	}
}

// checkEpoch is the fencing check: a request carrying X-Berth-Epoch older
// than the epoch the container was created for comes from a placement that
// has been superseded, and is refused with 409 stale_epoch.
func (s *Server) checkEpoch(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(wire.HeaderEpoch)
		if h == "" {
			return next(c)
		}
		reqEpoch, err := strconv.ParseInt(h, 10, 64)
		if err != nil {
			return badRequest(wire.HeaderEpoch + " must be an integer")
		}
		ctr, err := s.docker.Inspect(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		if have, _ := strconv.ParseInt(ctr.Labels[wire.LabelEpoch], 10, 64); reqEpoch < have {
			return &staleEpochError{have: have, got: reqEpoch}
		}
		c.Set(inspectedKey, ctr) // a route that needs the container again reads it here
		return next(c)
	}
}

type staleEpochError struct{ have, got int64 }

func (e *staleEpochError) Error() string {
	return fmt.Sprintf("stale placement epoch %d: the container belongs to epoch %d", e.got, e.have)
}

// Handler is the whole API as Serve serves it (with Wrap's middleware).
func (s *Server) Handler() http.Handler { return s.handler }

// Wrap puts mw in front of the whole API: it sees every request before the
// routes, the contact note, the epoch check and the error mapping. Each
// call wraps the handler built so far. Call it before Serve: it is not safe
// concurrently with requests. agent/agenttest uses it to make the real API
// fail at the HTTP level.
func (s *Server) Wrap(mw func(http.Handler) http.Handler) { s.handler = mw(s.handler) }

// Serve serves HTTPS on l until ctx ends, then shuts down gracefully:
// requests in flight may finish, streams (TTY, proxy) are ended at once and
// waited for. Serve is called once. Every connection is bounded by
// StreamConfig.HTTP (header, body, write and idle timeouts, header size);
// the streaming routes by its Stall per read and per write instead.
func (s *Server) Serve(ctx context.Context, l net.Listener, tlsConfig *tls.Config) error {
	srv := s.cfg.HTTP.Server(s.handler)
	srv.TLSConfig, srv.ErrorLog = tlsConfig, s.debugLog
	srv.RegisterOnShutdown(s.streams.close) // Shutdown ends no hijacked connection itself
	defer s.proxyTransport.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(l, tlsConfig)) }()
	select {
	case err := <-errc:
		s.streams.close()
		s.streams.wait(5 * time.Second)
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = srv.Close() // long streams (events) do not end by themselves
		}
		// A TTY's close handshake waits up to 5 s for the scheduler to
		// write its close frame, after up to 5 s to write ours.
		if !s.streams.wait(15 * time.Second) {
			s.log.Warn("streams still open after shutdown")
		}
		return err
	}
}

func (s *Server) health(c echo.Context) error {
	h := wire.Health{Status: "ok", ServerID: s.serverID, Version: version.Version, DockerOK: true, Time: time.Now().UTC()}
	if err := s.docker.Ping(c.Request().Context()); err != nil {
		h.Status, h.DockerOK, h.Error = "degraded", false, err.Error()
	}
	if s.eventLog != nil {
		h.EventSeq = s.eventLog.Seq()
	}
	return c.JSON(http.StatusOK, h)
}

// EventLog is the agent's numbered log of container events
// (agent/internal/eventlog).
type EventLog interface {
	Seq() uint64
	Since(after uint64) wire.EventLog
}

// EnableEventLog serves wire.PathEventLog from l and puts its latest number
// in the health answer. Call it before Serve.
func (s *Server) EnableEventLog(l EventLog) { s.eventLog = l }

// eventsSince answers the events after the cursor ?after=N (0 or none: a
// first call, answered with a reset).
func (s *Server) eventsSince(c echo.Context) error {
	if s.eventLog == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "this agent keeps no event log")
	}
	var after uint64
	if v := c.QueryParam(wire.QueryAfter); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return badRequest(wire.QueryAfter + " must be a non-negative integer")
		}
		after = n
	}
	return c.JSON(http.StatusOK, s.eventLog.Since(after))
}

func (s *Server) getCapacity(c echo.Context) error { return c.JSON(http.StatusOK, s.capacity()) }

func (s *Server) info(c echo.Context) error {
	info, err := s.docker.Info(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) list(c echo.Context) error {
	cs, err := s.docker.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cs)
}

func (s *Server) create(c echo.Context) error {
	var req wire.CreateContainerRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// A create runs to its end even if the scheduler hangs up (it may have
	// crashed): half-made containers are worse than finished ones, which the
	// scheduler's reconciliation adopts or removes by their labels.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 2*time.Minute)
	defer cancel()
	ctr, err := s.docker.Create(ctx, req)
	if err != nil {
		return err
	}
	s.log.Info("container created", "id", short(ctr.ID), "name", ctr.Name, "workspace_id", req.WorkspaceID, "started", req.Start)
	return c.JSON(http.StatusCreated, ctr)
}

func (s *Server) inspect(c echo.Context) error {
	ctr, err := s.docker.Inspect(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ctr)
}

func (s *Server) start(c echo.Context) error {
	if err := s.docker.Start(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) stop(c echo.Context) error {
	req := wire.StopRequest{TimeoutSeconds: 10}
	if c.Request().ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	if err := s.docker.Stop(c.Request().Context(), c.Param("id"), time.Duration(req.TimeoutSeconds)*time.Second); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) remove(c echo.Context) error {
	force, _ := strconv.ParseBool(c.QueryParam("force"))
	if err := s.docker.Remove(c.Request().Context(), c.Param("id"), force); err != nil {
		return err
	}
	s.log.Info("container removed", "id", short(c.Param("id")))
	return c.NoContent(http.StatusNoContent)
}

// exec answers with one ExecResult, or with ?stream=1 an NDJSON stream of
// ExecFrames written as the process produces output.
func (s *Server) exec(c echo.Context) error {
	var req wire.ExecRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return badRequest("cmd is required")
	}
	ctx, id := c.Request().Context(), c.Param("id")
	if c.QueryParam("stream") == "" {
		stdout, stderr := limitedBuffer{limit: wire.ExecOutputLimit}, limitedBuffer{limit: wire.ExecOutputLimit}
		code, timedOut, err := s.docker.Exec(ctx, id, req, nil, &stdout, &stderr)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, wire.ExecResult{ExitCode: code, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), TimedOut: timedOut,
			StdoutDropped: stdout.dropped, StderrDropped: stderr.dropped})
	}
	// Make sure the container exists before committing to a 200 stream.
	if _, err := s.docker.Inspect(ctx, id); err != nil {
		return err
	}
	nd := newNDJSON(c)
	code, timedOut, err := s.docker.Exec(ctx, id, req, nil, nd.writer("stdout"), nd.writer("stderr"))
	final := wire.ExecFrame{Exit: true, ExitCode: code, TimedOut: timedOut}
	if err != nil {
		final.Error = err.Error()
	}
	return nd.send(final)
}

func (s *Server) stats(c echo.Context) error {
	st, err := s.docker.Stats(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) update(c echo.Context) error {
	var res wire.Resources
	if err := decode(c, &res); err != nil {
		return err
	}
	if res.CPU < 0 || res.MemoryMB < 0 {
		return badRequest("cpu and memory_mb must not be negative")
	}
	if err := s.docker.Update(c.Request().Context(), c.Param("id"), res); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) removeData(c echo.Context) error {
	path := c.QueryParam("path")
	if path == "" {
		return badRequest("path is required")
	}
	if err := s.docker.RemoveData(path); err != nil {
		return err
	}
	s.log.Info("data removed", "path", path)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) images(c echo.Context) error {
	imgs, err := s.docker.Images(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, imgs)
}

// pull streams the daemon's pull progress as NDJSON and ends with one line
// with Done set, and Error when the pull failed.
func (s *Server) pull(c echo.Context) error {
	var req wire.PullRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Image == "" {
		return badRequest("image is required")
	}
	ref := req.Image
	if req.Tag != "" {
		ref += ":" + req.Tag
	}
	nd := newNDJSON(c)
	var daemonMsg string // the daemon's own failure message, if its stream carried one
	err := s.docker.Pull(c.Request().Context(), ref, func(p wire.PullProgress) {
		if p.Error != "" {
			daemonMsg = p.Error
		}
		_ = nd.send(p)
	})
	final := wire.PullProgress{Done: true, Status: "pulled " + ref}
	if err != nil {
		// The final line says why in the daemon's words when it gave
		// some ("pull access denied for …"), not in the adapter's wrapping.
		final.Status, final.Error = "", err.Error()
		if daemonMsg != "" {
			final.Error = daemonMsg
		}
	}
	return nd.send(final)
}

// events streams Docker events of berth containers until the client leaves.
func (s *Server) events(c echo.Context) error {
	ctx := c.Request().Context()
	evs, errs := s.docker.Events(ctx)
	nd := newNDJSON(c)
	nd.flush() // tell the client the stream is open
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return nil
			}
			if err := nd.send(ev); err != nil {
				return nil //nolint:nilerr // the client left: nothing to answer
			}
		case err := <-errs:
			if err != nil && ctx.Err() == nil {
				s.log.Warn("docker event stream ended", "error", err)
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// handleError is the one place that maps errors to status codes: it
// answers with errorAnswer's.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := s.errorAnswer(err, c)
	c.Response().Header().Set(wire.HeaderError, body.Code)
	if err := c.JSON(status, body); err != nil {
		s.log.Debug("write error response", "error", err)
	}
}

// errorAnswer is the status and body of the answer to err, logged as it
// deserves: the one mapping of errors to status codes and wire codes (a
// raw exec that fails after its answer started reports them in its
// trailer).
func (s *Server) errorAnswer(err error, c echo.Context) (int, wire.Error) {
	status, body := http.StatusInternalServerError, wire.Error{Code: wire.CodeInternal, Message: err.Error()}
	var he *echo.HTTPError
	var stale *staleEpochError
	switch {
	case errors.As(err, &stale):
		status, body.Code = http.StatusConflict, wire.CodeStaleEpoch
	case errors.Is(err, errNotRunning):
		status, body.Code = http.StatusConflict, wire.CodeNotRunning
	case errors.Is(err, errUpstreamRefused):
		status, body.Code = http.StatusBadGateway, wire.CodeUpstreamRefused
	case errors.Is(err, errUpstreamTimeout):
		status, body.Code = http.StatusGatewayTimeout, wire.CodeUpstreamTimeout
	case errors.Is(err, errUpstream):
		status, body.Code = http.StatusBadGateway, wire.CodeUpstreamError
	case errors.Is(err, errTooManyConnections):
		status, body.Code = http.StatusTooManyRequests, wire.CodeTooManyConnections
	case errors.Is(err, errShuttingDown):
		status, body.Code = http.StatusServiceUnavailable, wire.CodeUnavailable
	case errors.Is(err, errForbidden):
		status, body.Code = http.StatusForbidden, wire.CodeForbidden
	case errors.Is(err, homes.ErrNoExport):
		status, body.Code = http.StatusForbidden, wire.CodeForbidden
	case errors.Is(err, homes.ErrSourceFailed):
		status, body.Code = http.StatusBadGateway, wire.CodeSourceFailed
	case errors.Is(err, homes.ErrVerifyFailed):
		status, body.Code = http.StatusBadGateway, wire.CodeVerifyFailed
	case errors.As(err, &he):
		status = he.Code
		body.Code = codeForStatus(he.Code)
		if m, ok := he.Message.(string); ok {
			body.Message = m
		}
	case errors.Is(err, docker.ErrBadRequest):
		status, body.Code = http.StatusBadRequest, wire.CodeBadRequest
	case errors.Is(err, docker.ErrImageNotFound):
		status, body.Code = http.StatusNotFound, wire.CodeNoImage
	case errors.Is(err, docker.ErrNotFound):
		status, body.Code = http.StatusNotFound, wire.CodeNotFound
	case errors.Is(err, docker.ErrStartFailed):
		status, body.Code = http.StatusBadGateway, wire.CodeStartFailed
	case errors.Is(err, docker.ErrConflict):
		status, body.Code = http.StatusConflict, wire.CodeConflict
	case errors.Is(err, docker.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		status, body.Code = http.StatusGatewayTimeout, wire.CodeTimeout
	case errors.Is(err, docker.ErrDocker):
		status, body.Code = http.StatusBadGateway, wire.CodeDocker
	}
	switch {
	case upstreamCodes[body.Code]: // the app's business, not the agent's
		s.log.Debug("proxied request failed", "path", c.Request().URL.Path, "error", err)
	case status >= 500:
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "error", err)
	}
	return status, body
}

// upstreamCodes are the codes of failures to reach a container's app.
var upstreamCodes = map[string]bool{
	wire.CodeUpstreamRefused: true, wire.CodeUpstreamTimeout: true, wire.CodeUpstreamError: true,
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge:
		return wire.CodeBadRequest
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return wire.CodeNotFound
	case http.StatusConflict:
		return wire.CodeConflict
	case http.StatusServiceUnavailable:
		return wire.CodeUnavailable
	case http.StatusTooManyRequests:
		return wire.CodeTooManyConnections
	}
	return wire.CodeInternal
}

func badRequest(msg string) error { return echo.NewHTTPError(http.StatusBadRequest, msg) }

// maxJSONBody bounds a JSON request body: the largest, a create with its
// environment, labels and mounts, is a few KiB.
const maxJSONBody = 8 << 20

// errBodyTooLarge is the 413 of a JSON body longer than maxJSONBody.
var errBodyTooLarge = echo.NewHTTPError(http.StatusRequestEntityTooLarge,
	fmt.Sprintf("request body too large: a JSON body carries at most %d bytes", maxJSONBody))

// decode reads a JSON body strictly: unknown fields are an error, so a typo
// in a request (e.g. "priviledged") is reported instead of ignored. A body
// longer than maxJSONBody is 413, refused before it is read when its
// length is declared.
func decode(c echo.Context, v any) error {
	r := c.Request()
	if r.ContentLength > maxJSONBody {
		return errBodyTooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge
		}
		return badRequest("invalid JSON body: " + err.Error())
	}
	// One value and nothing after it but spaces, as encoding/json's
	// Unmarshal would have it (More does not see a stray '}' or ']').
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge
		}
		return badRequest("invalid JSON body: data after the JSON value")
	}
	return nil
}

// streaming takes a long-lived route off the server's whole-request read
// and write timeouts: its body and its answer are bounded per read and per
// write by StreamConfig.HTTP.Stall instead (httpbudget.Stream).
func (s *Server) streaming(next echo.HandlerFunc) echo.HandlerFunc {
	return s.cfg.HTTP.EchoStreaming(next)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ndjson writes one JSON value per line and flushes each, safely from
// several goroutines.
type ndjson struct {
	mu    sync.Mutex
	c     echo.Context
	enc   *json.Encoder
	frame []byte // sendOutput's buffer
}

func newNDJSON(c echo.Context) *ndjson {
	c.Response().Header().Set(echo.HeaderContentType, "application/x-ndjson")
	c.Response().WriteHeader(http.StatusOK)
	return &ndjson{c: c, enc: json.NewEncoder(c.Response())}
}

func (n *ndjson) send(v any) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enc.Encode(v); err != nil {
		return err
	}
	n.c.Response().Flush()
	return nil
}

func (n *ndjson) flush() { n.mu.Lock(); n.c.Response().Flush(); n.mu.Unlock() }

// writer returns an io.Writer that sends each write as an ExecFrame.
func (n *ndjson) writer(stream string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if err := n.sendOutput(stream, p); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

// sendOutput sends an output ExecFrame, encoded by hand into one reused
// buffer, exactly as encoding/json encodes it: the output path costs no
// allocation per chunk, whatever the output's size (README "Request
// budgets").
func (n *ndjson) sendOutput(stream string, p []byte) error {
	if len(p) == 0 {
		return n.send(wire.ExecFrame{Stream: stream})
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	b := append(n.frame[:0], `{"stream":`...)
	b = strconv.AppendQuote(b, stream) // "stdout" or "stderr": nothing to escape
	b = append(b, `,"data":"`...)
	b = base64.StdEncoding.AppendEncode(b, p)
	b = append(b, "\"}\n"...)
	n.frame = b
	if _, err := n.c.Response().Write(b); err != nil {
		return err
	}
	n.c.Response().Flush()
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// limitedBuffer keeps the first limit bytes of exec output and counts the
// rest, which it drops, so a runaway command cannot exhaust the agent's
// memory and the cut is reported, never silent.
type limitedBuffer struct {
	buf     []byte
	limit   int
	dropped int64
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := max(b.limit-len(b.buf), 0)
	b.buf = append(b.buf, p[:min(room, len(p))]...)
	b.dropped += int64(len(p) - min(room, len(p)))
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte { return b.buf }
