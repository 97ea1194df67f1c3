package wire

import (
	"strconv"
	"strings"
)

// Stream routes of the agent API, below PathContainers + "/{id}". Both pass
// the epoch fence like every per-container route; both are one mTLS
// connection scheduler ⇄ agent per user stream, and the agent reaches the
// container through its local Docker socket (TTY) or the container's bridge
// address (proxy): no container port is ever published.
//
// TTY — GET {id}/tty, upgraded to a WebSocket (RFC 6455, no compression).
// The TTYRequest travels JSON-encoded in the HeaderTTYRequest header of the
// handshake (a header, not the query, so that environment values never show
// up in a logged URL). Errors before the upgrade (no such container, not
// running, bad request, stale epoch) are ordinary JSON error answers. After
// it:
//   - agent → scheduler: binary messages, the terminal's output bytes as
//     read (no framing of their own, possibly cut anywhere in a UTF-8
//     sequence);
//   - scheduler → agent: binary messages are input bytes; text messages are
//     one JSON TTYControl each (a resize);
//   - when the process exits, the agent closes with status 1000 and the
//     reason TTYExitReason(code), "exit <code>"; on shutdown it closes with
//     1001, on an internal failure with 1011 and the error as reason;
//   - when the scheduler closes, the agent closes the exec's connection and
//     hangs the terminal up (SIGHUP to the exec's process, as a terminal
//     does): a shell exits, a tmux client detaches; a process that ignores
//     SIGHUP keeps running.
//
// There is no idle timeout on a TTY. Output is never buffered beyond one
// read: if the scheduler stops reading, the agent's write gives up after
// its stream write timeout and the stream ends.
//
// Proxy — {id}/proxy/{port}/{path...}?{query}, methods GET, HEAD, OPTIONS,
// POST, PUT, PATCH and DELETE, WebSocket upgrades included: the request is
// passed to http://<container address>:{port}/{path}?{query} and the
// answer streamed back (bodies both ways, server-sent events flushed as they
// come, 101 Switching Protocols and the upgraded connection passed through).
// Redirects are not followed. The agent drops the hop-by-hop headers,
// X-Internal-Service-Token, X-User-ID and every X-Berth-* header before
// the request reaches the container, and every X-Berth-* header of the
// container's answer. Failures of the agent itself (including the upstream
// ones: CodeUpstreamRefused, CodeUpstreamTimeout, CodeUpstreamError,
// CodeNotRunning, CodeTooManyConnections) are JSON Error answers that carry
// HeaderError, which an answer of the container never does: that is how the
// scheduler tells "the app answered 502" from "the agent could not reach the
// app".
const (
	SuffixTTY   = "/tty"
	SuffixProxy = "/proxy"
)

// HeaderTTYRequest carries the JSON TTYRequest of a TTY handshake.
const HeaderTTYRequest = "X-Berth-TTY"

// HeaderError is set, to the Error's code, on every error answer of the
// agent.
const HeaderError = "X-Berth-Error"

// HeaderPrefixInternal starts every berth-internal header (the epoch, the
// TTY request, HeaderError). None reaches a container, and none is taken
// from a container's answer.
const HeaderPrefixInternal = "X-Berth-"

// Headers of the podex platform that never reach a workspace (contract §14
// quirk 15).
const (
	HeaderServiceToken = "X-Internal-Service-Token"
	HeaderUserID       = "X-User-ID"
)

// TTYRequest starts an interactive process on a terminal in a container.
// Rows and Cols, when both set, are the terminal's initial size.
type TTYRequest struct {
	Cmd        []string          `json:"cmd"`
	User       string            `json:"user,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Rows       uint16            `json:"rows,omitempty"`
	Cols       uint16            `json:"cols,omitempty"`
}

// TTYControl is a text message scheduler → agent on a TTY stream.
type TTYControl struct {
	Type string `json:"type"` // TTYControlResize
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// TTYControlResize resizes the terminal to Rows × Cols (both > 0).
const TTYControlResize = "resize"

// TTYExitReason is the close reason of a TTY stream whose process exited
// with code.
func TTYExitReason(code int) string { return "exit " + strconv.Itoa(code) }

// ParseTTYExitReason reads a TTYExitReason back; ok is false for any other
// reason.
func ParseTTYExitReason(reason string) (code int, ok bool) {
	rest, found := strings.CutPrefix(reason, "exit ")
	if !found {
		return 0, false
	}
	code, err := strconv.Atoi(rest)
	return code, err == nil
}

// IsInternalHeader reports whether a header (canonical or not) is one that
// must never reach a workspace: the podex platform's identity headers and
// every X-Berth-* header.
func IsInternalHeader(name string) bool {
	return strings.EqualFold(name, HeaderServiceToken) || strings.EqualFold(name, HeaderUserID) ||
		len(name) >= len(HeaderPrefixInternal) && strings.EqualFold(name[:len(HeaderPrefixInternal)], HeaderPrefixInternal)
}
