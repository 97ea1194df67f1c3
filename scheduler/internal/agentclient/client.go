package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth/shared/mtls"
	"berth/shared/wire"
)

// Dialer makes Clients that share one mTLS identity. It caches one client
// (and so one connection pool) per server id and address. Safe for
// concurrent use.
type Dialer struct {
	base    *tls.Config
	observe func(op string, err error, took time.Duration)

	mu      sync.Mutex
	clients map[string]*Client
}

// NewDialer loads the scheduler's certificate, key and the cluster CA.
func NewDialer(files mtls.Files) (*Dialer, error) {
	cfg, err := mtls.ClientConfig(files, wire.RoleAgent)
	if err != nil {
		return nil, err
	}
	return &Dialer{base: cfg, clients: map[string]*Client{}}, nil
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
	tr := &http.Transport{
		TLSClientConfig:     mtls.ForServer(d.base, serverID),
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout: 3 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     60 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	c := &Client{ServerID: serverID, base: "https://" + addr, http: &http.Client{Transport: tr}, observe: d.observe}
	d.clients[key] = c
	return c
}

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
	if epoch, ok := ctx.Value(epochKey{}).(int64); ok && epoch > 0 {
		req.Header.Set(wire.HeaderEpoch, strconv.FormatInt(epoch, 10))
	}
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
		defer resp.Body.Close()
		e := &Error{Status: resp.StatusCode}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var we wire.Error
		if json.Unmarshal(raw, &we) != nil || we.Code == "" {
			we = wire.Error{Code: wire.CodeInternal, Message: string(raw)}
		}
		e.Code, e.Message = we.Code, we.Message
		return nil, e
	}
	return resp, nil
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
// relays it; it returns the final frame (exit code, timeout).
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

func readNDJSON[T any](r io.Reader, fn func(T) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
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
