package wire

import "fmt"

// Error codes the agent answers with. Exactly one place per server maps them
// to HTTP status codes (the agent's error handler); the scheduler's agent
// client maps them back to its own sentinels. Never match on Message.
const (
	CodeBadRequest  = "bad_request"     // 400: the request is malformed or forbidden
	CodeForbidden   = "forbidden"       // 403: e.g. a privileged container was asked for
	CodeNotFound    = "not_found"       // 404: no such container or file
	CodeNoImage     = "image_not_found" // 404: the image is not in the local dockerd
	CodeStartFailed = "start_failed"    // 502: created, but would not start (and was removed)
	CodeConflict    = "conflict"        // 409: name already in use, container not running
	CodeStaleEpoch  = "stale_epoch"     // 409: the request's fencing epoch is older than the container's
	CodeTimeout     = "timeout"         // 504
	CodeDocker      = "docker_error"    // 502: the local dockerd failed
	CodeUnavailable = "unavailable"     // 503: the agent is shutting down or fenced
	CodeInternal    = "internal"        // 500

	// Streams (proxy and TTY, see streams.go).
	CodeNotRunning         = "not_running"          // 409: the container is not running or has no address
	CodeUpstreamRefused    = "upstream_refused"     // 502: nothing listens on the container's port
	CodeUpstreamTimeout    = "upstream_timeout"     // 504: the container's app did not answer in time
	CodeUpstreamError      = "upstream_error"       // 502: any other failure reaching the container's app
	CodeTooManyConnections = "too_many_connections" // 429: the container's proxy connections are at their cap
)

// Error is the JSON body of every agent error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }
