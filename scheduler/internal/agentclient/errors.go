package agentclient

import (
	"errors"
	"fmt"

	"berth/shared/wire"
)

// Sentinels for agent answers and transport failures.
var (
	ErrBadRequest    = errors.New("agent refused the request")
	ErrNotFound      = errors.New("not found on agent")
	ErrImageNotFound = errors.New("image not found on agent")
	ErrStartFailed   = errors.New("container would not start")
	ErrConflict      = errors.New("conflict on agent")
	ErrStaleEpoch    = errors.New("stale placement epoch")
	ErrTimeout       = errors.New("agent operation timed out")
	ErrDocker        = errors.New("docker error on agent")
	ErrUnavailable   = errors.New("agent unavailable")
	ErrUnreachable   = errors.New("agent unreachable")
	ErrAgent         = errors.New("agent error")

	// Streams (TTY, Proxy, DialWebSocket).

	// ErrNotRunning: the container is not running or has no address
	// (it also matches ErrConflict).
	ErrNotRunning = errors.New("container not running")
	// ErrUpstreamRefused: nothing listens on the container's port.
	ErrUpstreamRefused = errors.New("connection to the container's port refused")
	// ErrUpstreamTimeout: the container's app did not connect or answer
	// in time.
	ErrUpstreamTimeout = errors.New("the container's app timed out")
	// ErrUpstream: any other failure to reach the container's app.
	ErrUpstream = errors.New("could not reach the container's app")
	// ErrTooManyConnections: the container's proxied requests are at the
	// agent's cap.
	ErrTooManyConnections = errors.New("too many connections to the container")
	// Home transfers (homes.go).

	// ErrSourceFailed: the source of a home import failed (unreachable,
	// refused, or its archive broke off); another target does not help.
	ErrSourceFailed = errors.New("home source failed")
	// ErrVerifyFailed: the imported copy differs from the source.
	ErrVerifyFailed = errors.New("home copy failed verification")

	// ErrUpstreamHandshake: the app answered a WebSocket handshake with
	// something other than a valid 101 (see HandshakeError).
	ErrUpstreamHandshake = errors.New("the container's app refused the WebSocket handshake")

	// ErrNoEventLog: the agent keeps no event log (an agent older than
	// wire.PathEventLog): follow its event stream instead (Events).
	ErrNoEventLog = errors.New("agent keeps no event log")
)

// Error is an error answer of the agent.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("agent %d %s: %s", e.Status, e.Code, e.Message)
}

// Is maps the wire code to this package's sentinels.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case wire.CodeBadRequest, wire.CodeForbidden:
		return target == ErrBadRequest
	case wire.CodeNotFound:
		return target == ErrNotFound
	case wire.CodeNoImage:
		return target == ErrImageNotFound
	case wire.CodeStartFailed:
		return target == ErrStartFailed
	case wire.CodeConflict:
		return target == ErrConflict
	case wire.CodeStaleEpoch:
		return target == ErrStaleEpoch || target == ErrConflict
	case wire.CodeTimeout:
		return target == ErrTimeout
	case wire.CodeDocker:
		return target == ErrDocker
	case wire.CodeUnavailable:
		return target == ErrUnavailable
	case wire.CodeNotRunning:
		return target == ErrNotRunning || target == ErrConflict
	case wire.CodeUpstreamRefused:
		return target == ErrUpstreamRefused
	case wire.CodeUpstreamTimeout:
		return target == ErrUpstreamTimeout
	case wire.CodeUpstreamError:
		return target == ErrUpstream
	case wire.CodeTooManyConnections:
		return target == ErrTooManyConnections
	case wire.CodeSourceFailed:
		return target == ErrSourceFailed
	case wire.CodeVerifyFailed:
		return target == ErrVerifyFailed
	}
	return target == ErrAgent
}

// HandshakeError is the app's answer to a WebSocket handshake that was not
// a valid 101 Switching Protocols (a 404 of a route that is no socket, a
// redirect to a login page, …). It matches ErrUpstreamHandshake.
type HandshakeError struct {
	Status int    // the app's status; 101 when its 101 was invalid
	Body   []byte // the first KiB of the app's answer
	Reason string // what was wrong
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("websocket handshake with the app: status %d: %s", e.Status, e.Reason)
}

// Is matches ErrUpstreamHandshake.
func (e *HandshakeError) Is(target error) bool { return target == ErrUpstreamHandshake }
