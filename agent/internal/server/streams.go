package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"berth/shared/httpbudget"
)

// StreamConfig bounds the TTY and proxy streams. A zero field takes
// DefaultStreamConfig's value.
type StreamConfig struct {
	// WriteTimeout is how long a write of TTY output to the scheduler may
	// block (it stopped reading) before the stream is ended: output is
	// never buffered beyond one read.
	WriteTimeout time.Duration
	// ProxyMaxConns caps the proxied requests (WebSockets included) open
	// at once per container; past it the answer is 429
	// too_many_connections.
	ProxyMaxConns int
	// ProxyDialTimeout bounds connecting to the container's port.
	ProxyDialTimeout time.Duration
	// ProxyResponseHeaderTimeout bounds the wait for the app's answer
	// headers (504 upstream_timeout past it); bodies may then stream for
	// as long as they flow.
	ProxyResponseHeaderTimeout time.Duration
	// ProxyIdleTimeout closes a connection to a container on which no
	// byte moved either way for this long: a stuck response, a forgotten
	// WebSocket.
	ProxyIdleTimeout time.Duration
	// HTTP bounds every connection of the API (Serve): header, body,
	// write and idle timeouts, header size; the streaming routes are
	// bounded per read and per write by its Stall instead (streaming).
	// Zero: httpbudget.Default().
	HTTP httpbudget.Timeouts
}

// DefaultStreamConfig: 30 s output writes, 256 proxied requests per
// container, 5 s to connect, 30 s for the app's headers (the compute
// service's proxy timeout), 1 h idle (a dev server's hot-reload socket may
// be quiet for long, and its client reloads the page when it breaks).
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		WriteTimeout:               30 * time.Second,
		ProxyMaxConns:              256,
		ProxyDialTimeout:           5 * time.Second,
		ProxyResponseHeaderTimeout: 30 * time.Second,
		ProxyIdleTimeout:           time.Hour,
		HTTP:                       httpbudget.Default(),
	}
}

// Validate refuses negative values.
func (c StreamConfig) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{
		"stream write timeout": c.WriteTimeout, "proxy dial timeout": c.ProxyDialTimeout,
		"proxy response header timeout": c.ProxyResponseHeaderTimeout, "proxy idle timeout": c.ProxyIdleTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", name, d))
		}
	}
	if c.ProxyMaxConns < 0 {
		errs = append(errs, fmt.Errorf("proxy max conns %d: must not be negative", c.ProxyMaxConns))
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero fields from DefaultStreamConfig.
func (c StreamConfig) withDefaults() StreamConfig {
	d := DefaultStreamConfig()
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.ProxyMaxConns == 0 {
		c.ProxyMaxConns = d.ProxyMaxConns
	}
	if c.ProxyDialTimeout == 0 {
		c.ProxyDialTimeout = d.ProxyDialTimeout
	}
	if c.ProxyResponseHeaderTimeout == 0 {
		c.ProxyResponseHeaderTimeout = d.ProxyResponseHeaderTimeout
	}
	if c.ProxyIdleTimeout == 0 {
		c.ProxyIdleTimeout = d.ProxyIdleTimeout
	}
	c.HTTP = c.HTTP.OrDefault()
	return c
}

// streams tracks the streams being served (TTY sessions and proxied
// requests) so that shutting down ends them: http.Server.Shutdown neither
// waits for nor ends a hijacked connection, and would wait for a streaming
// answer until its own deadline. Safe for concurrent use.
type streams struct {
	mu      sync.Mutex
	closed  bool
	cancels map[uint64]context.CancelFunc
	next    uint64
	wg      sync.WaitGroup
}

func newStreams() *streams { return &streams{cancels: map[uint64]context.CancelFunc{}} }

// open registers a stream. Its context ends with parent or when the
// streams are closed; done unregisters it. ok is false once closed.
func (s *streams) open(parent context.Context) (ctx context.Context, done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(parent)
	s.next++
	id := s.next
	s.cancels[id] = cancel
	s.wg.Add(1)
	return ctx, func() {
		s.mu.Lock()
		delete(s.cancels, id)
		s.mu.Unlock()
		cancel()
		s.wg.Done()
	}, true
}

// close ends every open stream and refuses new ones.
func (s *streams) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, cancel := range s.cancels {
		cancel()
	}
}

// wait waits up to timeout for the open streams to be done.
func (s *streams) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// connLimiter counts the proxied requests open per container. Safe for
// concurrent use.
type connLimiter struct {
	mu   sync.Mutex
	open map[string]int
}

// acquire takes one of max places for key; release gives it back.
func (l *connLimiter) acquire(key string, max int) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= max {
		return nil, false
	}
	if l.open == nil {
		l.open = map[string]int{}
	}
	l.open[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.open[key]--; l.open[key] == 0 {
				delete(l.open, key)
			}
		})
	}, true
}
