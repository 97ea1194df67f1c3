package server

import "errors"

// Errors of the stream routes; handleError maps each to its status and wire
// code. The upstream ones wrap the transport's error.
var (
	// errNotRunning: the container is not running or has no address
	// (409 not_running).
	errNotRunning = errors.New("container not running")
	// errUpstreamRefused: nothing listens on the container's port (502
	// upstream_refused).
	errUpstreamRefused = errors.New("upstream refused the connection")
	// errUpstreamTimeout: the app did not connect or answer in time (504
	// upstream_timeout).
	errUpstreamTimeout = errors.New("upstream timed out")
	// errUpstream: any other failure to reach the app (502 upstream_error).
	errUpstream = errors.New("upstream failed")
	// errTooManyConnections: the container's proxied requests are at their
	// cap (429 too_many_connections).
	errTooManyConnections = errors.New("too many proxied connections to the container")
	// errShuttingDown: the agent is stopping and opens no new stream (503
	// unavailable).
	errShuttingDown = errors.New("agent is shutting down")
)
