package podexapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config are the settings of the podex API peer.
type Config struct {
	BaseURL string // COMPUTE_API_BASE_URL, e.g. http://api:3001
	Token   string // INTERNAL_SERVICE_TOKEN: sent as X-Internal-Service-Token or as a bearer token (§7)
	Region  string // COMPUTE_REGION: the server list's region filter; "" = all

	Timeout     time.Duration // one attempt of one call (§7: 10 s)
	Attempts    int           // tries of one call, the first included
	BackoffBase time.Duration // the wait before the second try; doubles per try
	BackoffMax  time.Duration // the longest wait between tries (before jitter)

	ServerSyncInterval time.Duration // server list: at start and this often (§7: 30 s)
	HeartbeatInterval  time.Duration // server heartbeats (§7: 30 s)
	SpecsTTL           time.Duration // hardware specs are fetched again this often (§7: 5 min)
}

// DefaultConfig is the contract's timing (§7, §12.3), with the retry
// policy of the podex API's own client (§1.4): 0.5 s doubling to 10 s,
// plus up to 50 % jitter.
func DefaultConfig() Config {
	return Config{
		Timeout: 10 * time.Second, Attempts: 3, BackoffBase: 500 * time.Millisecond, BackoffMax: 10 * time.Second,
		ServerSyncInterval: 30 * time.Second, HeartbeatInterval: 30 * time.Second, SpecsTTL: 5 * time.Minute,
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("podex API base URL %q: want an absolute URL", c.BaseURL))
	}
	if c.Attempts < 1 {
		errs = append(errs, fmt.Errorf("podex API attempts %d: at least 1", c.Attempts))
	}
	for name, d := range map[string]time.Duration{"timeout": c.Timeout, "backoff base": c.BackoffBase,
		"backoff max": c.BackoffMax, "server sync interval": c.ServerSyncInterval,
		"heartbeat interval": c.HeartbeatInterval, "specs ttl": c.SpecsTTL} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("podex API %s must be positive, got %s", name, d))
		}
	}
	return errors.Join(errs...)
}

// Observer hears of every call to the API (metrics): its operation, its
// outcome (ok, not_found, rejected, unavailable), how many tries it took
// and how long all of them took.
type Observer interface {
	PodexCall(op, outcome string, tries int, took time.Duration)
}

// Client calls the podex API: one attempt is bounded by Config.Timeout;
// transport errors, 5xx, 408 and 429 are tried again up to Config.Attempts
// times with exponential backoff and jitter (a Retry-After is honoured up
// to BackoffMax); other answers are final. Safe for concurrent use.
type Client struct {
	cfg    Config
	base   string
	http   *http.Client
	obs    Observer
	log    hclog.Logger
	jitter func() float64 // in [0, 1)
}

// NewClient returns a client of the API at cfg.BaseURL; obs may be nil.
func NewClient(cfg Config, obs Observer, log hclog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), http: &http.Client{},
		obs: obs, log: log, jitter: rand.Float64}, nil
}

// Config returns the client's settings.
func (c *Client) Config() Config { return c.cfg }

// auth is how a call authenticates (§7 says which call uses which).
type auth int

const (
	serviceToken auth = iota // X-Internal-Service-Token
	bearerToken              // Authorization: Bearer
)

// call is one API operation.
type call struct {
	op     string // metric and log label, e.g. "servers.list"
	method string
	path   string // escaped
	query  url.Values
	body   any // JSON-encoded when not nil
	auth   auth
	out    any // a 2xx body is decoded into it when not nil
}

// maxBody bounds what is read of an answer.
const maxBody = 8 << 20

// do runs c with the retry policy and returns nil on 2xx, else an error
// wrapping ErrNotFound, ErrRejected or ErrUnavailable.
func (c *Client) do(ctx context.Context, cl call) error {
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("%s: encode: %w", cl.op, err)
		}
	}
	start := time.Now()
	var err error
	tries := 0
	for tries < c.cfg.Attempts {
		tries++
		var retryAfter time.Duration
		retryAfter, err = c.once(ctx, cl, body)
		if err == nil || !errors.Is(err, ErrUnavailable) || tries == c.cfg.Attempts || ctx.Err() != nil {
			break
		}
		wait := max(c.backoff(tries), min(retryAfter, c.cfg.BackoffMax))
		c.log.Debug("podex API call failed; trying again", "op", cl.op, "try", tries, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err = errors.Join(err, ctx.Err())
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	if c.obs != nil {
		c.obs.PodexCall(cl.op, outcome(err), tries, time.Since(start))
	}
	return err
}

// backoff is the wait after the n-th failed try: BackoffBase doubled n-1
// times, at most BackoffMax, plus up to 50 % jitter.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffBase
	for i := 1; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return d + time.Duration(c.jitter()*0.5*float64(d))
}

// outcome is the metric label of a call's result.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrRejected):
		return "rejected"
	}
	return "unavailable"
}

// once makes one attempt; the duration is the answer's Retry-After, if any.
func (c *Client) once(ctx context.Context, cl call, body []byte) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", cl.op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "berth-scheduler")
	switch cl.auth {
	case bearerToken:
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	default:
		req.Header.Set("X-Internal-Service-Token", c.cfg.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %w", cl.op, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, fmt.Errorf("%s: read answer: %w: %w", cl.op, ErrUnavailable, err)
	}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		if cl.out != nil && len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, cl.out); err != nil {
				return 0, fmt.Errorf("%s: decode answer: %w: %w", cl.op, ErrRejected, err)
			}
		}
		return 0, nil
	case s == http.StatusNotFound:
		return 0, fmt.Errorf("%s: %w: %s", cl.op, ErrNotFound, snippet(resp.Status, data))
	case s >= 500 || s == http.StatusRequestTimeout || s == http.StatusTooManyRequests:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%s: %w: %s", cl.op, ErrUnavailable, snippet(resp.Status, data))
	default:
		return 0, fmt.Errorf("%s: %w: %s", cl.op, ErrRejected, snippet(resp.Status, data))
	}
}

// snippet is an answer's status and the start of its body, for errors.
func snippet(status string, body []byte) string {
	b := strings.TrimSpace(string(body))
	if len(b) > 200 {
		b = b[:200] + "…"
	}
	if b == "" {
		return "API answered " + status
	}
	return "API answered " + status + ": " + b
}

// retryAfter reads a Retry-After header given in seconds.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
