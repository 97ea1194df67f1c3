package orchestrator

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
)

// The preview proxy and the WebSocket proxy reach a workspace's apps
// through the agent of its server (shared/wire/streams.go): the scheduler
// never opens a connection to a workspace's network itself. Neither takes
// the workspace's lock: a stream may last hours, and a stop, move or delete
// must not wait for it; the fencing epoch makes the agent refuse a stream
// for a container of an older placement, and stopping the container ends
// the streams to it.

// CheckAppTarget reports whether the stored record names a running
// container whose apps AppProxy and DialApp can reach: ErrNotRunning (the
// stored status is not running) or ErrNoContainer (no server or no
// container recorded). It is the first check of both; the compute API also
// runs it on its own where it must answer before dialling.
func CheckAppTarget(ws registry.Workspace) error {
	if ws.Status != fleet.StatusRunning {
		return fmt.Errorf("%w (status: %s)", ErrNotRunning, ws.Status)
	}
	if ws.ServerID == "" || ws.ContainerID == "" {
		return ErrNoContainer
	}
	return nil
}

// AppProxy returns a handler that forwards each request it serves to the
// app listening on port in the workspace's container and streams the app's
// answer back (agentclient.Client.Proxy: bodies are never held whole,
// redirects are passed back). The request's URL.Path (its escaped form
// kept) and RawQuery are the app's; its context bounds the exchange, and
// the handler adds the workspace's fencing epoch to it. ctx bounds the
// lookup of the server only.
//
// It fails, before anything is sent, with ErrNotRunning (the stored status
// is not running), ErrNoContainer or ErrServerUnavailable (the server is
// not registered). The handler hands every later failure to
// opts.ErrorHandler: the agent's errors (agentclient.ErrUpstreamRefused,
// ErrUpstreamTimeout, ErrUpstream, ErrNotRunning, ErrTooManyConnections,
// ErrStaleEpoch, …), with an agent that could not be reached or is shutting
// down also matching ErrServerUnavailable. opts.ErrorHandler must be set.
func (l *Lifecycle) AppProxy(ctx context.Context, ws registry.Workspace, port int, opts agentclient.ProxyOptions) (http.Handler, error) {
	if err := CheckAppTarget(ws); err != nil {
		return nil, err
	}
	client, _, err := l.client(ctx, ws)
	if err != nil {
		return nil, err
	}
	handleErr := opts.ErrorHandler
	opts.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		handleErr(w, r, agentError(err))
	}
	proxy := client.Proxy(ws.ContainerID, port, opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(w, r.WithContext(agentclient.WithEpoch(r.Context(), ws.Epoch)))
	}), nil
}

// DialApp opens a WebSocket to the app listening on port in the
// workspace's container, at path (escaped, without a query), offering
// subprotocols (agentclient.Client.DialWebSocket). ctx bounds the handshake
// only; the caller owns the Conn, whose read limit is the library's default
// until it sets another.
//
// Errors: ErrNotRunning, ErrNoContainer or ErrServerUnavailable as for
// AppProxy (an unreachable agent included); otherwise the agent's:
// agentclient.ErrUpstreamRefused (nothing listens on the port),
// ErrUpstreamHandshake (the app did not answer with a valid 101),
// ErrUpstreamTimeout, ErrNotRunning, ErrTooManyConnections, ErrBadRequest,
// ….
func (l *Lifecycle) DialApp(ctx context.Context, ws registry.Workspace, port int, path string, subprotocols []string) (*websocket.Conn, error) {
	if err := CheckAppTarget(ws); err != nil {
		return nil, err
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return nil, err
	}
	conn, err := client.DialWebSocket(cctx, ws.ContainerID, port, path, subprotocols)
	if err != nil {
		return nil, agentError(err)
	}
	return conn, nil
}
