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
	"time"
)

// Any scheduler answers the API: a follower forwards each request to the
// leader over the raft port (mutual TLS, scheduler certificates only), and
// the leader serves it as if it had come to it, checking the caller's
// token itself. Only a few routes are answered where they arrive (see
// Forward's local).

// ForwardedHeader names the scheduler that forwarded a request. A request
// that carries it and reaches a scheduler that does not lead is refused
// rather than sent on a second hop.
const ForwardedHeader = "X-Berth-Forwarded-By"

// DefaultLeaderWait is how long a request waits for a leader to be elected
// before it is answered 503 (an election takes about a second).
const DefaultLeaderWait = 3 * time.Second

type attemptKey struct{}

// attempt is one forward of a request: where to, and whether the leader
// could not even be reached (nothing was sent: safe to try again).
type attempt struct {
	addr      string
	unreached bool
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
			// Plain HTTP/1.1 inside the mux's TLS connection.
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Context().Value(attemptKey{}).(*attempt).addr
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(ForwardedHeader, n.cfg.NodeID)
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

// Forward serves next on the leader and forwards to the leader elsewhere;
// requests local says are for this scheduler (its health, its metrics, its
// own raft view) are served here. With no leader it waits up to wait for
// one, then answers 503.
func (n *Node) Forward(local func(*http.Request) bool, wait time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if local(r) {
			next.ServeHTTP(w, r)
			return
		}
		deadline := time.Now().Add(wait)
		unreached := "" // a leader known but not reached
		for {
			leader, addr, self := n.Leader()
			switch {
			case self && n.IsLeader():
				next.ServeHTTP(w, r)
				return
			case r.Header.Get(ForwardedHeader) != "":
				unavailable(w, fmt.Sprintf("Scheduler %s, to which %s forwarded the request, does not lead (an election is in progress); retry.",
					n.cfg.NodeID, r.Header.Get(ForwardedHeader)))
				return
			case addr != "" && !self:
				a := &attempt{addr: addr}
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
	})
}

// joinPath is the join call on the raft port's HTTP.
const joinPath = "/internal/cluster/join"

type joinRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// PeerHandler is what the raft port's HTTP serves (HTTPListener): the join
// call, and app for requests other schedulers forward.
func (n *Node) PeerHandler(local func(*http.Request) bool, app http.Handler) http.Handler {
	fwd := n.Forward(local, DefaultLeaderWait, app)
	join := n.Forward(func(*http.Request) bool { return false }, DefaultLeaderWait, http.HandlerFunc(n.join))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != joinPath {
			fwd.ServeHTTP(w, r)
			return
		}
		// Checked where the joiner called, then handled on the leader.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		var req joinRequest
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil || req.ID == "" || req.Addr == "" {
			http.Error(w, `want {"id", "addr"}`, http.StatusBadRequest)
			return
		}
		if r.Header.Get(ForwardedHeader) == "" {
			// A scheduler joins as itself: its certificate names its address.
			host, _, err := net.SplitHostPort(req.Addr)
			if err != nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].VerifyHostname(host) != nil {
				http.Error(w, fmt.Sprintf("the caller's certificate does not name the address %q", req.Addr), http.StatusForbidden)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		join.ServeHTTP(w, r)
	})
}

// join adds the calling scheduler as a voter (on the leader).
func (n *Node) join(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := n.AddVoter(req.ID, req.Addr); err != nil {
		unavailable(w, "add voter: "+err.Error())
		return
	}
	n.log.Info("scheduler joined", "id", req.ID, "addr", req.Addr)
	w.WriteHeader(http.StatusNoContent)
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
