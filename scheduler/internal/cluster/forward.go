package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"
)

// Any scheduler answers the API: a follower forwards each request to the
// leader over the raft port (mutual TLS, scheduler certificates only), and
// the leader serves it as if it had come to it, checking the caller's
// token itself. Only a few routes are answered where they arrive (see
// Route.Local).

// Headers a forwarding scheduler sets, overwriting any a client sent. The
// leader trusts them only on the raft port, which takes scheduler
// certificates alone; a public listener drops them from what clients send.
const (
	// ForwardedHeader names the scheduler that forwarded a request. A
	// forwarded request that reaches a scheduler that does not lead is
	// refused rather than sent on a second hop.
	ForwardedHeader = "X-Berth-Forwarded-By"
	// listenerHeader names the listener the request came in on ("main" or
	// "admin"): the leader serves it with that listener's routes.
	listenerHeader = "X-Berth-Listener"
	// clientAddrHeader and clientTLSHeader are the client's address and
	// whether it came over TLS, as the forwarding scheduler saw them (sign-in
	// limits, Secure cookies).
	clientAddrHeader = "X-Berth-Client-Addr"
	clientTLSHeader  = "X-Berth-Client-TLS"
)

// internalPrefix is the paths only schedulers call, on the raft port.
const internalPrefix = "/internal/cluster/"

// DefaultLeaderWait is how long a request waits for a leader to be elected
// before it is answered 503 (an election takes about two seconds).
const DefaultLeaderWait = 3 * time.Second

type attemptKey struct{}

// attempt is one forward of a request: where to, from which listener, and
// whether the leader could not even be reached (nothing was sent: safe to
// try again).
type attempt struct {
	addr, listener string
	unreached      bool
}

// dialError is a failure to reach the leader, before any byte of the
// request left.
type dialError struct{ err error }

func (e dialError) Error() string { return "reach the leader: " + e.err.Error() }
func (e dialError) Unwrap() error { return e.err }

func (n *Node) newProxy() *httputil.ReverseProxy {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, err := n.mux.dial(ctx, addr, protoHTTP)
			if err != nil {
				return nil, dialError{err}
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			a := pr.In.Context().Value(attemptKey{}).(*attempt)
			// Plain HTTP/1.1 inside the mux's TLS connection.
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = a.addr
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set(ForwardedHeader, n.cfg.NodeID)
			pr.Out.Header.Set(listenerHeader, a.listener)
			pr.Out.Header.Set(clientAddrHeader, pr.In.RemoteAddr)
			pr.Out.Header.Del(clientTLSHeader)
			if pr.In.TLS != nil {
				pr.Out.Header.Set(clientTLSHeader, "1")
			}
		},
		Transport:     tr,
		FlushInterval: -1, // exec streams and the panel's events as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.As(err, new(dialError)) && r.Context().Err() == nil {
				r.Context().Value(attemptKey{}).(*attempt).unreached = true // Forward waits and tries again
				return
			}
			n.log.Warn("forward to the leader failed", "path", r.URL.Path, "error", err)
			unavailable(w, "The scheduler leader was lost during the request; its outcome is unknown. "+
				"Creates are idempotent per workspace_id: retry.")
		},
	}
}

// unavailable answers 503 with the contract's error shape.
func unavailable(w http.ResponseWriter, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": detail})
}

// Route is how a public listener forwards.
type Route struct {
	// Listener names it to the leader ("main", "admin").
	Listener string
	// Local says which requests this scheduler answers itself (its
	// health, its metrics, its own raft view).
	Local func(*http.Request) bool
	// Wait bounds the wait for a leader before a 503.
	Wait time.Duration
	// Wrap, if set, wraps the forwarding (the listener's stream budgets: a
	// forwarded exec stream or upload outlives a request's time limits).
	Wrap func(http.Handler) http.Handler
}

// Forward serves next on the leader and forwards to the leader elsewhere,
// for a public listener.
func (n *Node) Forward(rt Route, next http.Handler) http.Handler {
	var proxied http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.serveOrForward(w, r, rt.Wait, rt.Listener, next, false)
	})
	if rt.Wrap != nil {
		proxied = rt.Wrap(proxied)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{ForwardedHeader, listenerHeader, clientAddrHeader, clientTLSHeader} {
			r.Header.Del(h) // only a scheduler sets them, and only on the raft port
		}
		if strings.HasPrefix(r.URL.Path, internalPrefix) {
			http.NotFound(w, r)
			return
		}
		if rt.Local != nil && rt.Local(r) {
			next.ServeHTTP(w, r)
			return
		}
		proxied.ServeHTTP(w, r)
	})
}

// serveOrForward serves r with next when this node leads (once it has
// applied every earlier entry: reads must see the last leader's writes),
// forwards it to the leader otherwise, and with no leader waits up to wait
// for one. A request that came forwarded is never sent on.
func (n *Node) serveOrForward(w http.ResponseWriter, r *http.Request, wait time.Duration, listener string, next http.Handler, forwarded bool) {
	deadline := time.Now().Add(wait)
	unreached := "" // a leader known but not reached
	for {
		leader, addr, self := n.Leader()
		switch {
		case self && n.IsLeader():
			if n.ready() == nil {
				next.ServeHTTP(w, r)
				return
			}
		case forwarded:
			unavailable(w, fmt.Sprintf("Scheduler %s, to which %s forwarded the request, does not lead (an election is in progress); retry.",
				n.cfg.NodeID, r.Header.Get(ForwardedHeader)))
			return
		case addr != "" && !self:
			a := &attempt{addr: addr, listener: listener}
			out := r.WithContext(context.WithValue(r.Context(), attemptKey{}, a))
			if r.Body != nil { // the transport closes it even when it could not dial: keep it for the next try
				out.Body = io.NopCloser(r.Body)
			}
			n.proxy.ServeHTTP(w, out)
			if !a.unreached {
				return
			}
			unreached = leader
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			if unreached != "" {
				unavailable(w, fmt.Sprintf("The scheduler leader %s cannot be reached from %s (waited %s); retry.", unreached, n.cfg.NodeID, wait))
				return
			}
			unavailable(w, fmt.Sprintf("No scheduler leader: an election is in progress (waited %s); retry.", wait))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready makes sure this leader has applied every entry of the terms
// before its own (raft.Barrier), once per term.
func (n *Node) ready() error {
	term := n.r.CurrentTerm()
	if n.readyTerm.Load() == term {
		return nil
	}
	n.readyMu.Lock()
	defer n.readyMu.Unlock()
	if n.readyTerm.Load() == term {
		return nil
	}
	if err := n.r.Barrier(10 * time.Second).Error(); err != nil {
		return err
	}
	n.readyTerm.Store(term)
	return nil
}

// joinPath is the join call on the raft port's HTTP.
const joinPath = internalPrefix + "join"

type joinRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// PeerHandler is what the raft port's HTTP serves (HTTPListener): the join
// call, and the requests other schedulers forward, each served by the
// handler of the listener it came in on (app).
func (n *Node) PeerHandler(wait time.Duration, app func(listener string) http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == joinPath {
			n.peerJoin(w, r, wait)
			return
		}
		if strings.HasPrefix(r.URL.Path, internalPrefix) {
			http.NotFound(w, r)
			return
		}
		// The client as the forwarding scheduler saw it.
		if a := r.Header.Get(clientAddrHeader); a != "" {
			r.RemoteAddr = a
		}
		if r.Header.Get(clientTLSHeader) == "" {
			r.TLS = nil
		}
		n.serveOrForward(w, r, wait, "", app(r.Header.Get(listenerHeader)), true)
	})
}

// peerJoin checks a join where the joiner called (a scheduler joins as
// itself: its certificate names the address it gives), then has the
// leader add it.
func (n *Node) peerJoin(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	var req joinRequest
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.ID == "" || req.Addr == "" {
		http.Error(w, `want {"id", "addr"}`, http.StatusBadRequest)
		return
	}
	forwarded := r.Header.Get(ForwardedHeader) != "" // checked by the scheduler that forwarded it
	if !forwarded {
		host, _, err := net.SplitHostPort(req.Addr)
		if err != nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].VerifyHostname(host) != nil {
			http.Error(w, fmt.Sprintf("the caller's certificate does not name the address %q", req.Addr), http.StatusForbidden)
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	n.serveOrForward(w, r, wait, "", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { n.join(w, req) }), forwarded)
}

// join adds the scheduler as a voter (on the leader). A scheduler joins only
// when it has no raft state: if its id is a member already, that member lost
// its disk, and it is removed first, so that it cannot vote twice in one term.
func (n *Node) join(w http.ResponseWriter, req joinRequest) {
	f := n.r.GetConfiguration()
	if err := f.Error(); err != nil {
		unavailable(w, "configuration: "+err.Error())
		return
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == req.ID {
			if err := n.RemoveServer(req.ID); err != nil {
				unavailable(w, "remove the old "+req.ID+": "+err.Error())
				return
			}
			n.log.Warn("scheduler rejoins without its raft state: removed, then added again", "id", req.ID)
		}
	}
	if err := n.AddVoter(req.ID, req.Addr); err != nil {
		unavailable(w, "add voter: "+err.Error())
		return
	}
	n.log.Info("scheduler joined", "id", req.ID, "addr", req.Addr)
	w.WriteHeader(http.StatusNoContent)
}

// StepDown hands the leadership to another scheduler if this one leads (at
// shutdown, so that the others elect at once rather than after a timeout).
func (n *Node) StepDown() {
	if n.IsLeader() {
		if err := n.r.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer", "error", err)
		}
	}
}

// Join asks the scheduler at addr (any member) to add this node, and
// retries until it is added or ctx ends. A node that already belongs to a
// cluster need not call it.
func (n *Node) Join(ctx context.Context, addr string) error {
	body, _ := json.Marshal(joinRequest{ID: n.cfg.NodeID, Addr: n.Addr()})
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, a string) (net.Conn, error) { return n.mux.dial(ctx, a, protoHTTP) },
	}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+joinPath, bytes.NewReader(body))
		if err != nil {
			return err
		}
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusNoContent {
				return nil
			}
			err = fmt.Errorf("join through %s: %s", addr, res.Status)
			if res.StatusCode == http.StatusForbidden || res.StatusCode == http.StatusBadRequest {
				return err
			}
		}
		n.log.Warn("join: retrying", "through", addr, "error", err)
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}
