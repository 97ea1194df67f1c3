package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth/shared/mtls"
	"berth/shared/wire"

	"github.com/coder/websocket"
)

// deadPeer is the TCP keepalive of every connection to an agent: probes
// after 15 s of silence, every 5 s, three unanswered ones close it.
var deadPeer = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// Dialer makes Clients that share one mTLS identity. It caches one client
// per server id and address; every cached client uses the Dialer's one
// connection pool (pooled by agent address), so a server costs the
// scheduler nothing between calls but its Client — no transport of its own,
// and no connection once its idle ones are closed (IdleConnTimeout). Safe
// for concurrent use.
type Dialer struct {
	base    *tls.Config
	id      *mtls.Identity
	observe func(op string, err error, took time.Duration)
	probe   probeTransport // shared by Probe clients (probe.go)

	mu      sync.Mutex
	clients map[string]*Client
	pool    *http.Transport // shared by cached clients, made with the first
}

// NewDialer loads the scheduler's certificate, key, the cluster CA and the
// revocation list (files.CRL, optional); all are re-read when they change.
func NewDialer(files mtls.Files) (*Dialer, error) {
	id, err := mtls.Load(files)
	if err != nil {
		return nil, err
	}
	return &Dialer{base: id.ClientConfig(wire.RoleAgent), id: id, clients: map[string]*Client{}}, nil
}

// Observe makes every call of every client report its operation (method
// and route, e.g. "POST /v1/containers/:id/exec"), error and duration. Call
// it before the first Client.
func (d *Dialer) Observe(fn func(op string, err error, took time.Duration)) { d.observe = fn }

// Client returns the client of the agent of serverID at addr (host:port).
func (d *Dialer) Client(serverID, addr string) *Client {
	key := serverID + "|" + addr
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[key]; ok {
		return c
	}
	if d.pool == nil {
		d.pool = d.newPool()
	}
	rt := &verifiedTransport{rt: d.pool, serverID: serverID, verify: func(cs *tls.ConnectionState) error {
		return d.id.Verifier.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, serverID, wire.RoleAgent)
	}}
	c := &Client{ServerID: serverID, base: "https://" + addr, http: &http.Client{Transport: rt}, observe: d.observe}
	d.clients[key] = c
	return c
}

// IdleConnTimeout is how long a connection to an agent stays open unused.
const IdleConnTimeout = 15 * time.Second

// serverIDKey carries, in a request's context, the server id the agent's
// certificate is verified against when a shared transport dials.
type serverIDKey struct{}

// dialAgent dials an agent for the server id in the context (serverIDKey)
// and makes the mTLS handshake (3 s at most), the certificate verified for
// that id; tune adjusts the TLS configuration of the transport.
func dialAgent(dialer *net.Dialer, base *tls.Config, tune func(*tls.Config)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		id, _ := ctx.Value(serverIDKey{}).(string)
		if id == "" {
			return nil, fmt.Errorf("dial %s without a server id", addr)
		}
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := mtls.ForServer(base, id)
		tune(cfg)
		conn := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := conn.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}
}

// newPool is the transport of cached clients. Connections are pooled by
// agent address; each is dialed for the server id its first request was
// for (it rides in the request's context) and verified against it in the
// handshake, and every answer is verified again against the server id of
// its own request (verifiedTransport), so a connection to an address that
// changed hands is never trusted for the new server.
func (d *Dialer) newPool() *http.Transport {
	// A peer that vanished (a host killed, its network gone) sends no RST:
	// keepalive probes find a dead connection within ~30 s, so a long
	// stream (a home import, a terminal) ends instead of hanging.
	dialer := &net.Dialer{Timeout: 3 * time.Second, KeepAliveConfig: deadPeer}
	return &http.Transport{
		DialTLSContext:      dialAgent(dialer, d.base, func(cfg *tls.Config) { cfg.NextProtos = []string{"h2", "http/1.1"} }),
		MaxIdleConnsPerHost: 16,
		// An idle connection costs the scheduler ~30 KiB and two
		// goroutines. Calls to one server come in bursts (a create, an event
		// fetch) or minutes apart in a large fleet (reconciliation, see
		// orchestrator.Config.ReconcileRate): after 15 s idle a connection
		// is closed, so that only the servers called lately hold one.
		IdleConnTimeout:   IdleConnTimeout,
		ForceAttemptHTTP2: true,
		// A raw exec's input waits for the agent's 100 Continue, so a
		// refused exec costs no upload (ExecRaw).
		ExpectContinueTimeout: 5 * time.Second,
	}
}

// verifiedTransport sends a client's requests through the shared pool with
// its server id, and re-verifies the agent's certificate on every answer:
// an agent certificate revoked (or a CA removed) while a keep-alive or
// HTTP/2 connection stays open is refused on the next call, not only at the
// next handshake.
type verifiedTransport struct {
	rt       *http.Transport
	serverID string
	verify   func(*tls.ConnectionState) error
}

func (v *verifiedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.rt.RoundTrip(req.WithContext(context.WithValue(req.Context(), serverIDKey{}, v.serverID)))
	if err != nil || resp.TLS == nil {
		return resp, err
	}
	if err := v.verify(resp.TLS); err != nil {
		resp.Body.Close()
		v.rt.CloseIdleConnections()
		return nil, err
	}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport (every client's idle connections: they share it).
func (v *verifiedTransport) CloseIdleConnections() { v.rt.CloseIdleConnections() }

type epochKey struct{}

// WithEpoch makes every call made with ctx carry a fencing epoch: the agent
// refuses (ErrStaleEpoch) an operation on a container created for a newer
// placement.
func WithEpoch(ctx context.Context, epoch int64) context.Context {
	return context.WithValue(ctx, epochKey{}, epoch)
}

// Client talks to one agent. Calls carry no timeout of their own: give them
// a ctx with the deadline the operation deserves.
type Client struct {
	ServerID string
	base     string
	http     *http.Client
	observe  func(op string, err error, took time.Duration)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentLength int64) (resp *http.Response, err error) {
	if c.observe != nil {
		start := time.Now()
		defer func() { c.observe(method+" "+route(path), err, time.Since(start)) }()
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	setEpoch(ctx, req.Header)
	if body != nil {
		req.ContentLength = contentLength
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err = c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s on %s: %w", method, path, c.ServerID, ctx.Err())
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.ServerID, err)
	}
	if resp.StatusCode >= 400 {
		return nil, agentError(resp)
	}
	return resp, nil
}

// setEpoch puts the fencing epoch of ctx (WithEpoch), if any, in h.
func setEpoch(ctx context.Context, h http.Header) {
	if epoch, ok := ctx.Value(epochKey{}).(int64); ok && epoch > 0 {
		h.Set(wire.HeaderEpoch, strconv.FormatInt(epoch, 10))
	}
}

// agentError reads an error answer of the agent (a wire.Error) and closes
// its body.
func agentError(resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var we wire.Error
	if json.Unmarshal(raw, &we) != nil || we.Code == "" {
		we = wire.Error{Code: wire.CodeInternal, Message: string(raw)}
	}
	e.Code, e.Message = we.Code, we.Message
	return e
}

// call sends in (JSON, if not nil) and decodes the answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	var n int64
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, n = bytes.NewReader(b), int64(len(b))
	}
	resp, err := c.do(ctx, method, path, query, body, n)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s answer of %s: %w", path, c.ServerID, err)
	}
	return nil
}

// route replaces the container id of a path with ":id".
func route(path string) string {
	const prefix = wire.PathContainers + "/"
	if !strings.HasPrefix(path, prefix) {
		return path
	}
	rest := path[len(prefix):]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return prefix + ":id" + rest[i:]
	}
	return prefix + ":id"
}

func containerPath(id string, suffix string) string {
	return wire.PathContainers + "/" + url.PathEscape(id) + suffix
}

// Health calls the agent's health endpoint.
func (c *Client) Health(ctx context.Context) (wire.Health, error) {
	var h wire.Health
	return h, c.call(ctx, http.MethodGet, wire.PathHealth, nil, nil, &h)
}

// Capacity returns the agent's latest capacity sample.
func (c *Client) Capacity(ctx context.Context) (wire.Capacity, error) {
	var v wire.Capacity
	return v, c.call(ctx, http.MethodGet, wire.PathCapacity, nil, nil, &v)
}

// Info returns facts about the agent's dockerd.
func (c *Client) Info(ctx context.Context) (wire.DockerInfo, error) {
	var v wire.DockerInfo
	return v, c.call(ctx, http.MethodGet, wire.PathInfo, nil, nil, &v)
}

// List returns every berth container on the agent.
func (c *Client) List(ctx context.Context) ([]wire.Container, error) {
	var v []wire.Container
	return v, c.call(ctx, http.MethodGet, wire.PathContainers, nil, nil, &v)
}

// Create creates (and, if req.Start, starts) a container.
func (c *Client) Create(ctx context.Context, req wire.CreateContainerRequest) (wire.Container, error) {
	var v wire.Container
	return v, c.call(ctx, http.MethodPost, wire.PathContainers, nil, req, &v)
}

// Inspect returns one container.
func (c *Client) Inspect(ctx context.Context, id string) (wire.Container, error) {
	var v wire.Container
	return v, c.call(ctx, http.MethodGet, containerPath(id, ""), nil, nil, &v)
}

// Start starts a container.
func (c *Client) Start(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, containerPath(id, "/start"), nil, nil, nil)
}

// Stop stops a container, killing it after timeout.
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return c.call(ctx, http.MethodPost, containerPath(id, "/stop"), nil, wire.StopRequest{TimeoutSeconds: int(timeout.Seconds())}, nil)
}

// Remove removes a container; force kills it first if it runs.
func (c *Client) Remove(ctx context.Context, id string, force bool) error {
	return c.call(ctx, http.MethodDelete, containerPath(id, ""), url.Values{"force": {strconv.FormatBool(force)}}, nil, nil)
}

// Exec runs a command and returns its whole output.
func (c *Client) Exec(ctx context.Context, id string, req wire.ExecRequest) (wire.ExecResult, error) {
	var v wire.ExecResult
	return v, c.call(ctx, http.MethodPost, containerPath(id, "/exec"), nil, req, &v)
}

// ExecStream runs a command and calls onOutput for each chunk as the agent
// relays it; it returns the final frame (exit code, timeout). Each frame is
// decoded anew: its Data is never reused, onOutput may keep it.
func (c *Client) ExecStream(ctx context.Context, id string, req wire.ExecRequest, onOutput func(wire.ExecFrame) error) (wire.ExecFrame, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return wire.ExecFrame{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, containerPath(id, "/exec"), url.Values{"stream": {"1"}}, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return wire.ExecFrame{}, err
	}
	defer resp.Body.Close()
	var final wire.ExecFrame
	err = readNDJSON(resp.Body, func(f wire.ExecFrame) error {
		if f.Exit {
			final = f
			return nil
		}
		return onOutput(f)
	})
	if err == nil && !final.Exit {
		err = fmt.Errorf("%w: exec stream of %s ended without an exit frame", ErrUnreachable, c.ServerID)
	}
	return final, err
}

// Stats samples a container's resource use.
func (c *Client) Stats(ctx context.Context, id string) (wire.ContainerStats, error) {
	var v wire.ContainerStats
	return v, c.call(ctx, http.MethodGet, containerPath(id, "/stats"), nil, nil, &v)
}

// Update changes a container's CPU and memory limits.
func (c *Client) Update(ctx context.Context, id string, res wire.Resources) error {
	return c.call(ctx, http.MethodPost, containerPath(id, "/update"), nil, res, nil)
}

// Metrics returns the agent's Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/metrics", nil, nil, 0)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// RemoveData deletes a directory below the agent's data directory.
func (c *Client) RemoveData(ctx context.Context, path string) error {
	return c.call(ctx, http.MethodDelete, wire.PathData, url.Values{"path": {path}}, nil, nil)
}

// Images lists the agent's images.
func (c *Client) Images(ctx context.Context) ([]wire.Image, error) {
	var v []wire.Image
	return v, c.call(ctx, http.MethodGet, wire.PathImages, nil, nil, &v)
}

// Pull pulls an image, reporting progress; it fails if the final line
// carries an error.
func (c *Client) Pull(ctx context.Context, req wire.PullRequest, progress func(wire.PullProgress)) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, wire.PathImagePull, nil, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var last wire.PullProgress
	err = readNDJSON(resp.Body, func(p wire.PullProgress) error {
		last = p
		if progress != nil {
			progress(p)
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case last.Error != "":
		return &Error{Status: http.StatusBadGateway, Code: wire.CodeDocker, Message: last.Error}
	case !last.Done:
		return fmt.Errorf("%w: pull stream of %s ended early", ErrUnreachable, c.ServerID)
	}
	return nil
}

// Events follows the agent's container event stream, calling onEvent for
// each, until ctx ends or the stream breaks. onOpen is called once the
// stream is established (so a caller can resync state it may have missed).
func (c *Client) Events(ctx context.Context, onOpen func(), onEvent func(wire.ContainerEvent)) error {
	resp, err := c.do(ctx, http.MethodGet, wire.PathEvents, nil, nil, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if onOpen != nil {
		onOpen()
	}
	err = readNDJSON(resp.Body, func(ev wire.ContainerEvent) error { onEvent(ev); return nil })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		err = fmt.Errorf("%w: event stream of %s closed", ErrUnreachable, c.ServerID)
	}
	return err
}

// EventsSince fetches the container events numbered after the cursor
// after from the agent's event log (wire.PathEventLog; 0 for a first call,
// which the agent answers with a reset). It is ErrNoEventLog from an agent
// that keeps none.
func (c *Client) EventsSince(ctx context.Context, after uint64) (wire.EventLog, error) {
	var out wire.EventLog
	err := c.call(ctx, http.MethodGet, wire.PathEventLog, url.Values{wire.QueryAfter: {strconv.FormatUint(after, 10)}}, nil, &out)
	var e *Error
	if errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusNotImplemented) {
		return out, fmt.Errorf("%w: %s: %v", ErrNoEventLog, c.ServerID, err)
	}
	return out, err
}

// ndjsonBuffer is the first buffer of a stream's line reader: most lines
// are small (events, progress), a long-lived stream should cost little, and
// the buffer grows, up to ndjsonMaxLine, for a longer line.
const (
	ndjsonBuffer  = 4 << 10
	ndjsonMaxLine = 32 << 20
)

func readNDJSON[T any](r io.Reader, fn func(T) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, ndjsonBuffer), ndjsonMaxLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("decode stream line: %w", err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return nil
}

// --- streams: terminal, preview proxy, WebSocket to an app (shared/wire/streams.go)

const (
	// ttyInputChunk is the largest input message TTY.Write sends; the
	// agent takes messages of up to 1 MiB.
	ttyInputChunk = 32 << 10
	// ttyReadLimit bounds one output message from the agent (it sends
	// at most 32 KiB).
	ttyReadLimit = 1 << 20
)

// TTY opens a terminal in the container: req.Cmd runs on a TTY, its output
// is what Read returns and its input what Write sends, over one WebSocket
// to the agent (no container port is involved). ctx bounds the opening and
// the whole session: when it ends, the stream is cut. The fencing epoch of
// ctx (WithEpoch) is checked before the process starts.
//
// Errors before the process starts are the agent's: ErrNotFound,
// ErrNotRunning, ErrStaleEpoch, ErrBadRequest, ErrUnreachable, ….
func (c *Client) TTY(ctx context.Context, containerID string, req wire.TTYRequest) (*TTY, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	conn, err := c.dialWebSocket(ctx, containerPath(containerID, wire.SuffixTTY), "",
		http.Header{wire.HeaderTTYRequest: {string(raw)}}, nil, false)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(ttyReadLimit)
	sctx, cancel := context.WithCancel(ctx)
	t := &TTY{conn: conn, ctx: sctx, cancel: cancel, serverID: c.ServerID}
	context.AfterFunc(sctx, func() { _ = conn.CloseNow() })
	return t, nil
}

// TTY is an open terminal session (Client.TTY). One goroutine may Read
// while others Write, Resize or Close.
type TTY struct {
	conn     *websocket.Conn
	ctx      context.Context // the session's: the caller's, ended by Close
	cancel   context.CancelFunc
	serverID string

	rmu sync.Mutex // one Read at a time
	cur io.Reader  // the output message being read
	err error      // how the output ended, once it has

	mu       sync.Mutex
	exited   bool
	exitCode int
	closed   bool
}

// Read reads the terminal's output, as the process wrote it (bytes, not
// lines; a UTF-8 sequence may be cut between two reads). It returns io.EOF
// when the process has exited (ExitCode then tells how). Any other end is
// an error: ErrUnavailable when the agent is shutting down, ErrUnreachable
// when the connection broke, ErrAgent for a failure of the agent, the
// context's error when ctx ended, net.ErrClosed after Close.
func (t *TTY) Read(p []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for t.err == nil {
		if t.cur == nil {
			typ, r, err := t.conn.Reader(t.ctx)
			if err != nil {
				t.err = t.endOf(err)
				break
			}
			if typ != websocket.MessageBinary { // none yet: skip
				if _, err := io.Copy(io.Discard, r); err != nil {
					t.err = t.endOf(err)
				}
				continue
			}
			t.cur = r
		}
		n, err := t.cur.Read(p)
		if errors.Is(err, io.EOF) {
			t.cur, err = nil, nil
			if n == 0 {
				continue
			}
		}
		if err != nil {
			t.err = t.endOf(err)
		}
		return n, t.err
	}
	return 0, t.err
}

// endOf maps how the output ended to Read's error, noting the exit code.
func (t *TTY) endOf(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ce websocket.CloseError
	normal := errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure
	if code, ok := wire.ParseTTYExitReason(ce.Reason); normal && ok {
		t.exited, t.exitCode = true, code
		return io.EOF
	}
	switch {
	case t.closed:
		return fmt.Errorf("terminal on %s: %w", t.serverID, net.ErrClosed)
	case t.ctx.Err() != nil:
		return fmt.Errorf("terminal on %s: %w", t.serverID, context.Cause(t.ctx))
	case normal:
		return io.EOF
	case errors.As(err, &ce) && ce.Code == websocket.StatusGoingAway:
		return fmt.Errorf("%w: terminal on %s: %s", ErrUnavailable, t.serverID, ce.Reason)
	case errors.As(err, &ce):
		return fmt.Errorf("%w: terminal on %s closed with %d: %s", ErrAgent, t.serverID, ce.Code, ce.Reason)
	}
	return fmt.Errorf("%w: terminal on %s: %v", ErrUnreachable, t.serverID, err)
}

// ExitCode is the process's exit code, once Read has returned io.EOF;
// exited is false while it runs or when the stream ended otherwise.
func (t *TTY) ExitCode() (code int, exited bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exitCode, t.exited
}

// Write sends input to the process (in messages of at most 32 KiB). It
// blocks while the agent does not take it (the process does not read):
// that is the backpressure.
func (t *TTY) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), ttyInputChunk)]
		if err := t.conn.Write(t.ctx, websocket.MessageBinary, chunk); err != nil {
			return n, t.writeErr(err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Resize sets the terminal's size; both must be positive. Like Write, an
// end of ctx while the message is being sent cuts the stream.
func (t *TTY) Resize(ctx context.Context, rows, cols uint16) error {
	if rows == 0 || cols == 0 {
		return fmt.Errorf("%w: terminal size %dx%d", ErrBadRequest, rows, cols)
	}
	raw, err := json.Marshal(wire.TTYControl{Type: wire.TTYControlResize, Rows: rows, Cols: cols})
	if err != nil {
		return err
	}
	if err := t.conn.Write(ctx, websocket.MessageText, raw); err != nil {
		return t.writeErr(err)
	}
	return nil
}

func (t *TTY) writeErr(err error) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("terminal on %s: %w", t.serverID, net.ErrClosed)
	case t.ctx.Err() != nil:
		return fmt.Errorf("terminal on %s: %w", t.serverID, context.Cause(t.ctx))
	}
	return fmt.Errorf("%w: terminal on %s: %v", ErrUnreachable, t.serverID, err)
}

// Close ends the session: the agent hangs the process up (a shell exits, a
// tmux client detaches and its session lives on). It waits a few seconds
// at most for the agent's side of the close. Close is idempotent.
func (t *TTY) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	err := t.conn.Close(websocket.StatusNormalClosure, "")
	t.cancel()
	if err != nil && !errors.Is(err, net.ErrClosed) && websocket.CloseStatus(err) == -1 {
		return fmt.Errorf("close terminal on %s: %w", t.serverID, err)
	}
	return nil
}

// ProxyOptions configure Client.Proxy.
type ProxyOptions struct {
	// ModifyResponse, if set, may change an answer of the app before it
	// is written (inject a script into HTML, fix Content-Length, …). It
	// never sees the agent's own error answers. An error it returns goes,
	// as is, to ErrorHandler.
	ModifyResponse func(*http.Response) error
	// ErrorHandler answers a request that got no answer of the app. err
	// matches one of ErrUpstreamRefused, ErrUpstreamTimeout, ErrUpstream,
	// ErrNotRunning, ErrTooManyConnections, ErrNotFound, ErrStaleEpoch,
	// ErrUnavailable, ErrBadRequest (an *Error of the agent), ErrUnreachable
	// (the agent could not be reached), the request's context error (the
	// client left: there is no one to answer), or is ModifyResponse's. The
	// default answers the agent's status (502 when unreachable) with the
	// error's text.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// ErrorLog receives what the reverse proxy itself reports (an answer
	// body cut mid-way); nil discards it.
	ErrorLog *log.Logger
}

// modifyError marks an error of ProxyOptions.ModifyResponse, which reaches
// ErrorHandler unchanged.
type modifyError struct{ err error }

func (e modifyError) Error() string { return e.err.Error() }
func (e modifyError) Unwrap() error { return e.err }

// Proxy returns a handler that serves each request by forwarding it to the
// app listening on port in the container, through the agent's proxy route
// over mTLS, and streaming the app's answer back: no body is held in
// memory, server-sent events are flushed as they come, redirects are passed
// back (not followed), a WebSocket upgrade passes through (101, then the
// upgraded connection both ways), and the request body may go on flowing
// while the answer does (full duplex).
//
// The app's path and query are the request's URL.Path (its escaped form
// kept) and RawQuery: mount the handler under the preview's prefix with
// http.StripPrefix, or give it a request whose URL was rewritten. The
// request's context bounds the exchange and carries the fencing epoch
// (WithEpoch). X-Internal-Service-Token, X-User-ID and X-Berth-* headers
// are dropped before the request leaves the scheduler (the agent drops them
// too); X-Forwarded-* headers the caller set are passed on. The handler is
// safe for concurrent use.
func (c *Client) Proxy(containerID string, port int, opts ProxyOptions) http.Handler {
	prefix := wire.PathContainers + "/" + containerID + wire.SuffixProxy + "/" + strconv.Itoa(port)
	rawPrefix := containerPath(containerID, wire.SuffixProxy+"/"+strconv.Itoa(port))
	base, _ := url.Parse(c.base) // built by Dialer.Client: always valid
	errorLog := opts.ErrorLog
	if errorLog == nil {
		errorLog = log.New(io.Discard, "", 0)
	}
	handleErr := opts.ErrorHandler
	if handleErr == nil {
		handleErr = defaultProxyError
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var failed error
		if c.observe != nil {
			start := time.Now()
			defer func() { c.observe("PROXY "+wire.PathContainers+"/:id"+wire.SuffixProxy, failed, time.Since(start)) }()
		}
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				path, rawPath := pr.In.URL.Path, pr.In.URL.EscapedPath()
				if !strings.HasPrefix(path, "/") {
					path, rawPath = "/"+path, "/"+rawPath
				}
				pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
				pr.Out.URL.Path, pr.Out.URL.RawPath = prefix+path, rawPrefix+rawPath
				pr.Out.URL.RawQuery = pr.In.URL.RawQuery
				pr.Out.Host = ""
				for name := range pr.Out.Header {
					if wire.IsInternalHeader(name) {
						delete(pr.Out.Header, name)
					}
				}
				for _, name := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
					if v, ok := pr.In.Header[name]; ok {
						pr.Out.Header[name] = v
					}
				}
				setEpoch(pr.In.Context(), pr.Out.Header)
			},
			Transport:     c.http.Transport,
			FlushInterval: -1,
			ModifyResponse: func(resp *http.Response) error {
				if resp.Header.Get(wire.HeaderError) != "" {
					return agentError(resp)
				}
				if opts.ModifyResponse == nil {
					return nil
				}
				if err := opts.ModifyResponse(resp); err != nil {
					return modifyError{err}
				}
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				var me modifyError
				var ae *Error
				switch {
				case errors.As(err, &me):
					err = me.err
				case errors.As(err, &ae):
				case r.Context().Err() != nil:
					err = fmt.Errorf("proxy to %s: %w", c.ServerID, context.Cause(r.Context()))
				default:
					err = fmt.Errorf("%w: %s: %v", ErrUnreachable, c.ServerID, err)
				}
				failed = err
				handleErr(w, r, err)
			},
			ErrorLog: errorLog,
		}
		// The request body may still flow in while the answer flows out;
		// an HTTP/1 server needs leave for that.
		_ = http.NewResponseController(w).EnableFullDuplex()
		rp.ServeHTTP(w, r)
	})
}

// defaultProxyError answers with the agent's status (502 when it could not
// be reached) and the error's text; nothing when the client left.
func defaultProxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	status := http.StatusBadGateway
	var e *Error
	if errors.As(err, &e) {
		status = e.Status
	}
	http.Error(w, err.Error(), status)
}

// DialWebSocket opens a WebSocket to the app listening on port in the
// container, through the agent's proxy route over mTLS (verifying the
// agent's identity like every call). path is the app's path, optionally
// with "?query". subprotocols are offered to the app; the one it chose is
// the Conn's Subprotocol. ctx bounds the handshake only, and carries the
// fencing epoch (WithEpoch). The caller owns the Conn: its read limit is
// the library's default (32 KiB per message) until it sets another.
//
// A refused connection to the app matches ErrUpstreamRefused (likewise
// ErrUpstreamTimeout, ErrNotRunning, … from the agent); an app that
// answers the handshake with anything but a valid 101 gives a
// *HandshakeError (ErrUpstreamHandshake).
func (c *Client) DialWebSocket(ctx context.Context, containerID string, port int, path string, subprotocols []string) (*websocket.Conn, error) {
	path, rawQuery, _ := strings.Cut(path, "?")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return c.dialWebSocket(ctx, containerPath(containerID, wire.SuffixProxy+"/"+strconv.Itoa(port))+path, rawQuery,
		http.Header{}, subprotocols, true)
}

// dialWebSocket opens a WebSocket to the agent at path. An error answer of
// the agent becomes its *Error; with toApp, any other failed handshake is
// the app's (HandshakeError).
func (c *Client) dialWebSocket(ctx context.Context, path, rawQuery string, header http.Header, subprotocols []string, toApp bool) (conn *websocket.Conn, err error) {
	if c.observe != nil {
		op := "GET " + route(path)
		if toApp {
			op = "GET " + wire.PathContainers + "/:id" + wire.SuffixProxy
		}
		start := time.Now()
		defer func() { c.observe(op, err, time.Since(start)) }()
	}
	setEpoch(ctx, header)
	u := c.base + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse } // the app's redirect is its answer
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: &hc, HTTPHeader: header, Subprotocols: subprotocols})
	switch {
	case err == nil:
		return conn, nil
	case resp != nil && resp.Header.Get(wire.HeaderError) != "":
		return nil, agentError(resp)
	case resp != nil && toApp:
		body, _ := io.ReadAll(resp.Body)
		return nil, &HandshakeError{Status: resp.StatusCode, Body: body, Reason: err.Error()}
	case resp != nil && resp.StatusCode >= 400:
		return nil, agentError(resp)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("GET %s on %s: %w", path, c.ServerID, ctx.Err())
	case resp != nil:
		return nil, fmt.Errorf("%w: %s: websocket handshake: %v", ErrAgent, c.ServerID, err)
	}
	return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.ServerID, err)
}
