package computeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/httpbudget"
	"berth/shared/wire"
)

// This file is the one place that turns failures into the contract's
// statuses and details (§1.2, §3), and exec failures into the exit codes
// of §3.9.

// Request, auth and ownership failures (§1.2); 422s are built in validate.go.
var (
	errMissingUserID   = echo.NewHTTPError(http.StatusUnauthorized, "Missing user ID header")
	errEmptyID         = echo.NewHTTPError(http.StatusBadRequest, "Invalid workspace_id: cannot be empty")
	errUnsafeID        = echo.NewHTTPError(http.StatusBadRequest, "Invalid workspace_id: contains unsafe characters")
	errLongID          = echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("Invalid workspace_id: longer than %d characters", maxIDLen))
	errNotFound        = echo.NewHTTPError(http.StatusNotFound, "Workspace not found")
	errForbidden       = echo.NewHTTPError(http.StatusForbidden, "Not authorized to access this workspace")
	errContentRequired = echo.NewHTTPError(http.StatusBadRequest, "Content is required")
	errInternal        = echo.NewHTTPError(http.StatusInternalServerError, "Internal Server Error")
	errBodyUnreadable  = echo.NewHTTPError(http.StatusBadRequest, "There was an error parsing the body")
	errBodyTooLarge    = echo.NewHTTPError(http.StatusRequestEntityTooLarge, "Request body too large")
)

// Request budgets (budgets.go, guard.go): our limits, not the contract's.
var errTooManyJSONValues = echo.NewHTTPError(http.StatusRequestEntityTooLarge,
	fmt.Sprintf("Request body too large: a JSON body holds at most %d values (objects, arrays, members and elements)", maxJSONValues))

// jsonBodyTooLarge is the 413 of a JSON body longer than limit
// (Deps.JSONBodyLimit).
func jsonBodyTooLarge(limit int64) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf(
		"Request body too large: a JSON body carries at most %d bytes (%s, BERTH_JSON_BODY_LIMIT)", limit, sizeText(limit)))
}

// tooManyExecs is the 429 of an exec past the caller's limit.
func tooManyExecs(limit int) error {
	return echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
		"Too many commands running for this user: at most %d at once (BERTH_USER_EXEC_LIMIT). Try again when one has finished.", limit))
}

// tooManyTransfers is the 429 of a file read or write past the caller's
// limit.
func tooManyTransfers(limit int) error {
	return echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
		"Too many file transfers running for this user: at most %d at once (BERTH_USER_TRANSFER_LIMIT). Try again when one has finished.", limit))
}

// op names the operation whose error is being mapped.
type op string

const (
	opLookup  op = "lookup" // Get/Sync of the owner check, List, the health re-read
	opCreate  op = "create"
	opRestart op = "restart"
	opDelete  op = "delete"
	opMark    op = "mark-for-deletion"
	opBeat    op = "heartbeat"
	opScale   op = "scale"
)

// Contract details (§3) of the orchestrator's sentinels.
const (
	detailOwnedByOther     = "Workspace ID already in use"
	detailNoServers        = "No servers available for workspace creation"
	detailCreateFailed     = "Container creation returned no container ID"
	detailStartFailed      = "Container created but failed to start. Check container logs for details."
	detailNoContainer      = "Workspace has no assigned server or container"
	detailServerNotAvail   = "Server not available"
	detailNoServerAssign   = "Workspace has no server assignment"
	detailServerUnusable   = "Server not found or unhealthy"
	detailScaleNoContainer = "Failed to scale workspace: Workspace has no container"
	detailScaleFailed      = "the container's limits could not be updated"
	// Our own, for schedulers on raft (README, Scheduler high availability).
	detailLeaderChanged     = "The scheduler leader changed during the request; its outcome is unknown. Retry it (a create is idempotent per workspace_id)."
	detailCreateInterrupted = "An earlier create of this workspace was interrupted (its scheduler stopped or lost the leadership); it is being resolved: retry in a few seconds."
)

// internalFailure words an unexpected failure (of the agent, its dockerd,
// the registry) for a compute API caller: a stable phrase for the kind of
// failure, never the error's own text, which carries internal detail (the
// agent's messages, addresses, Docker's and SQLite's words). The caller
// logs err.
func internalFailure(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, agentclient.ErrTimeout):
		return "the operation timed out"
	case errors.Is(err, orchestrator.ErrServerUnavailable), errors.Is(err, agentclient.ErrUnreachable),
		errors.Is(err, agentclient.ErrUnavailable):
		return "the workspace's server is not available"
	case errors.Is(err, agentclient.ErrStaleEpoch):
		return "the workspace moved to another server; try again"
	case errors.Is(err, agentclient.ErrNotRunning), errors.Is(err, agentclient.ErrConflict):
		return "the workspace's container is not running"
	case errors.Is(err, agentclient.ErrNotFound):
		return "the workspace's container was not found"
	case errors.Is(err, agentclient.ErrDocker):
		return "the container runtime on the workspace's server failed"
	case errors.Is(err, orchestrator.ErrStartFailed), errors.Is(err, agentclient.ErrStartFailed):
		return "the container was created but did not start"
	case errors.Is(err, orchestrator.ErrCreateFailed):
		return "the container could not be created"
	case errors.Is(err, orchestrator.ErrMarkedForDeletion):
		return "the workspace is marked for deletion"
	}
	return "internal error"
}

// PlacementDetail is the contract's 503 detail of a create that found no
// server (§3.1, §11.2) for err: orchestrator.ErrNoServers, an
// *orchestrator.PlacementError or one of placement's failures. The admin
// API's placement dry run answers with it too.
func PlacementDetail(err error) string {
	var region *placement.RegionError
	switch {
	case errors.Is(err, orchestrator.ErrNoServers):
		return detailNoServers
	case errors.As(err, &region):
		return fmt.Sprintf("No capacity available in %s region", region.Region)
	case errors.Is(err, placement.ErrNoHealthyServers):
		return "No healthy servers available"
	case errors.Is(err, placement.ErrNoServers):
		return "No servers available"
	}
	return "No server has sufficient resources"
}

// imageDetail is the 503 detail of a workspace image missing on its server.
func imageDetail(e *orchestrator.ImageMissingError) string {
	return fmt.Sprintf("Workspace image '%s' not found on server '%s'. Run 'make load-workspace-images-dind' to load workspace images into the development servers.",
		e.Image, e.ServerID)
}

// homeDetail says why a workspace cannot start without its files.
func homeDetail(e *orchestrator.HomeUnavailableError) string {
	return fmt.Sprintf("Workspace home directory is on server '%s', which is not reachable; "+
		"it starts when the server is back (or after an operator removes the server, with an empty home)", e.ServerID)
}

// envDetail is the 400 of a create whose environment sets a variable it
// may not (README: reserved environment variables).
func envDetail(e *orchestrator.EnvError) string {
	if e.GPU {
		return fmt.Sprintf("Invalid environment: %s is only allowed on GPU tiers", e.Key)
	}
	return fmt.Sprintf("Invalid environment: %s is reserved and set by the platform", e.Key)
}

// fail maps an orchestrator error of operation o to the HTTP error the
// contract gives for it. Unexpected errors are logged here.
func (a *API) fail(o op, err error) error {
	if errors.Is(err, orchestrator.ErrNotFound) {
		return errNotFound
	}
	if errors.Is(err, registry.ErrNotLeader) || errors.Is(err, registry.ErrOutcomeUnknown) {
		a.log.Warn("request cut by a change of scheduler leader", "op", o, "error", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, detailLeaderChanged)
	}
	var (
		perr     *orchestrator.PlacementError
		ierr     *orchestrator.ImageMissingError
		unusable *orchestrator.ServerUnusableError
		herr     *orchestrator.HomeUnavailableError
		enverr   *orchestrator.EnvError
	)
	switch o {
	case opCreate:
		switch {
		case errors.Is(err, orchestrator.ErrOwnedByOther):
			return echo.NewHTTPError(http.StatusConflict, detailOwnedByOther)
		case errors.Is(err, orchestrator.ErrNoServers):
			return echo.NewHTTPError(http.StatusServiceUnavailable, detailNoServers)
		case errors.As(err, &perr):
			return echo.NewHTTPError(http.StatusServiceUnavailable, PlacementDetail(perr))
		case errors.As(err, &ierr):
			return echo.NewHTTPError(http.StatusServiceUnavailable, imageDetail(ierr))
		case errors.As(err, &enverr):
			return echo.NewHTTPError(http.StatusBadRequest, envDetail(enverr))
		case errors.As(err, &herr):
			a.log.Warn("create refused: home unreachable", "error", err)
			return echo.NewHTTPError(http.StatusServiceUnavailable, homeDetail(herr))
		case errors.Is(err, orchestrator.ErrCreateInterrupted):
			return echo.NewHTTPError(http.StatusServiceUnavailable, detailCreateInterrupted)
		case errors.Is(err, orchestrator.ErrCreateFailed):
			a.log.Warn("create failed", "error", err)
			return echo.NewHTTPError(http.StatusServiceUnavailable, detailCreateFailed)
		case errors.Is(err, orchestrator.ErrStartFailed):
			a.log.Warn("create failed", "error", err)
			return echo.NewHTTPError(http.StatusServiceUnavailable, detailStartFailed)
		}
		a.log.Error("create failed", "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to create workspace: "+internalFailure(err))
	case opRestart:
		a.log.Warn("restart failed", "error", err)
		switch {
		case errors.Is(err, orchestrator.ErrNoContainer):
			return echo.NewHTTPError(http.StatusNotFound, detailNoContainer)
		case errors.Is(err, orchestrator.ErrNoServers):
			return echo.NewHTTPError(http.StatusNotFound, "Failed to start workspace: "+detailNoServers)
		case errors.As(err, &perr):
			return echo.NewHTTPError(http.StatusNotFound, "Failed to start workspace: "+PlacementDetail(perr))
		case errors.As(err, &ierr):
			return echo.NewHTTPError(http.StatusNotFound, "Failed to start workspace: "+imageDetail(ierr))
		case errors.As(err, &herr):
			return echo.NewHTTPError(http.StatusNotFound, "Failed to start workspace: "+homeDetail(herr))
		}
		return echo.NewHTTPError(http.StatusNotFound, "Failed to start workspace: "+internalFailure(err))
	case opDelete:
		a.log.Error("delete failed", "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to delete workspace: "+internalFailure(err))
	case opScale:
		var detail string
		switch {
		case errors.Is(err, orchestrator.ErrNoServerAssignment):
			detail = detailNoServerAssign
		case errors.As(err, &unusable):
			detail = fmt.Sprintf("Server %s not found or unhealthy", unusable.ServerID)
		case errors.Is(err, orchestrator.ErrScaleNoContainer):
			detail = detailScaleNoContainer
		case errors.Is(err, orchestrator.ErrScaleFailed):
			a.log.Error("scale failed", "error", err)
			detail = detailScaleFailed
		default:
			a.log.Error("scale failed", "error", err)
			detail = internalFailure(err)
		}
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to scale workspace: "+detail)
	case opMark:
		a.log.Error("mark for deletion failed", "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to mark workspace for deletion: "+internalFailure(err))
	}
	a.log.Error("request failed", "op", string(o), "error", err)
	return errInternal
}

// execResponse is WorkspaceExecResponse (§3.9).
type execResponse struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// execKind classifies how an exec ended.
type execKind int

const (
	execDone     execKind = iota // the command ran to its end
	execTimedOut                 // 124 "Command timed out"
	execRefused                  // never reached Docker: no container, not running, no server
	execFailed                   // the Docker exec failed
)

// execOutcome is the §3.9 table: every way an exec can end, as the
// response /exec returns with 200. Output cut by the agent
// (wire.ExecOutputLimit per stream) is marked at the end of stderr
// (truncationMark); a failure on the way to the container is worded by
// internalFailure and logged.
func (a *API) execOutcome(ws registry.Workspace, res orchestrator.ExecResult, err error) (execResponse, execKind) {
	return a.outcome(ws, res, err, wire.ExecOutputLimit)
}

// rawOutcome is execOutcome for a raw exec, whose stderr is cut at
// wire.ExecRawStderrLimit (its stdout went elsewhere).
func (a *API) rawOutcome(ws registry.Workspace, res orchestrator.ExecResult, err error) (execResponse, execKind) {
	return a.outcome(ws, res, err, wire.ExecRawStderrLimit)
}

func (a *API) outcome(ws registry.Workspace, res orchestrator.ExecResult, err error, limit int64) (execResponse, execKind) {
	switch {
	case err == nil && res.TimedOut, errors.Is(err, context.DeadlineExceeded):
		return execResponse{ExitCode: 124, Stderr: "Command timed out"}, execTimedOut
	case errors.Is(err, orchestrator.ErrNoContainer):
		return execResponse{ExitCode: -1, Stderr: detailNoContainer}, execRefused
	case errors.Is(err, orchestrator.ErrNotRunning):
		return execResponse{ExitCode: -1, Stderr: fmt.Sprintf("Workspace is not running (status: %s)", ws.Status)}, execRefused
	case errors.Is(err, orchestrator.ErrServerUnavailable):
		return execResponse{ExitCode: 1, Stderr: detailServerNotAvail}, execRefused
	case err != nil:
		a.log.Warn("exec failed", "workspace_id", ws.ID, "error", err)
		return execResponse{ExitCode: 1, Stderr: detailExecFailed + internalFailure(err)}, execFailed
	}
	// A cut may split a character: what is left of it goes too.
	stdout, stdoutDropped := cutWhole(res.Stdout, res.StdoutDropped)
	stderr, stderrDropped := cutWhole(res.Stderr, res.StderrDropped)
	// Python decoded the output as UTF-8 and failed the exec if it was not.
	for _, out := range [][]byte{stdout, stderr} {
		if i := invalidUTF8At(out); i >= 0 {
			return execResponse{ExitCode: 1, Stderr: (&invalidUTF8Error{Offset: int64(i), Byte: out[i]}).Error()}, execFailed
		}
	}
	marks := truncationMark("stdout", stdoutDropped, limit) + truncationMark("stderr", stderrDropped, limit)
	if marks != "" && len(stderr) > 0 && stderr[len(stderr)-1] != '\n' {
		marks = "\n" + marks
	}
	return execResponse{ExitCode: res.ExitCode, Stdout: string(stdout), Stderr: string(stderr) + marks}, execDone
}

// detailExecFailed starts the stderr of an exec that failed on the way to
// the container (§3.9 "Docker exec raised"); internalFailure says how.
const detailExecFailed = "Command execution failed: "

// truncationMark is the line that ends stderr when the agent cut a
// stream's output at limit bytes and dropped the rest: the documented
// marker of a cut (README, "File and exec limits"), e.g.
//
//	[berth: stdout truncated: 4194304 bytes beyond the 16 MiB limit were not returned]
func truncationMark(stream string, dropped, limit int64) string {
	if dropped <= 0 {
		return ""
	}
	return fmt.Sprintf("[berth: %s truncated: %d bytes beyond the %s limit were not returned]\n", stream, dropped, sizeText(limit))
}

// cutWhole drops the incomplete character at the end of output the agent
// cut (dropped > 0) and counts its bytes as dropped.
func cutWhole(out []byte, dropped int64) ([]byte, int64) {
	if dropped <= 0 {
		return out, dropped
	}
	n := incompleteTail(out)
	return out[:len(out)-n], dropped + int64(n)
}

// sizeText writes a byte count for people: "100 MiB", "64 KiB", "1.5 GiB",
// "1000 bytes".
func sizeText(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.size), u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// fileTooLarge is the 413 of a file read or write above the limit.
func fileTooLarge(size, limit int64) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("File too large: %d bytes; the limit is %d bytes (%s)", size, limit, sizeText(limit)))
}

// rawBodyTooLarge is the 413 of a file write whose body is longer than its
// bound (limit: the file limit), before its content could be measured.
func rawBodyTooLarge(bound, limit int64) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf(
		"Request body too large: more than %d bytes; a file write carries at most %d bytes (%s) of content",
		bound, limit, sizeText(limit)))
}

// invalidUTF8At is the offset of the first byte that is not valid UTF-8,
// or -1.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// ErrorHandler writes every error as FastAPI did: {"detail": …} with the
// error's status; 404 "Not Found" and 405 "Method Not Allowed" (with the
// router's Allow header) for unknown paths and methods; HEAD gets no body.
// Use it as the echo instance's HTTPErrorHandler.
func ErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := http.StatusInternalServerError, any("Internal Server Error")
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status, detail = he.Code, he.Message
		switch status {
		case http.StatusNotFound:
			if he == echo.ErrNotFound {
				detail = "Not Found"
			}
		case http.StatusMethodNotAllowed:
			detail = "Method Not Allowed"
		}
	}
	// A refused body (401, 413, 429, …) is not read on: the connection
	// closes after the answer (README "Request budgets").
	httpbudget.Refuse(c.Response(), c.Request())
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = writeJSON(c, status, map[string]any{"detail": detail})
}

// fileAction names a file route for fileFailure.
type fileAction int

const (
	fileRead fileAction = iota
	fileWrite
	fileDelete
)

// nulPath is the outcome for a path with a NUL byte, which no shell
// command can carry.
var nulPath = execResponse{ExitCode: 1, Stderr: "path contains a NUL byte"}

// fileFailure maps a file command that did not succeed (§3.12–§3.14):
// read and write answer 404 with the command's stderr, as Python did;
// delete answers 404 when the path does not exist and 500 otherwise.
func fileFailure(action fileAction, path string, out execResponse) error {
	switch action {
	case fileRead:
		return echo.NewHTTPError(http.StatusNotFound, "Failed to read file: "+out.Stderr)
	case fileWrite:
		return echo.NewHTTPError(http.StatusNotFound, "Failed to write file: "+out.Stderr)
	}
	if out.ExitCode == exitNoSuchPath {
		return echo.NewHTTPError(http.StatusNotFound, "File not found: "+path)
	}
	return echo.NewHTTPError(http.StatusInternalServerError, "Failed to delete file: "+out.Stderr)
}

// Tunnels (§3.19). Python's manager raised "Workspace <id> has no
// container/server" from start and stop (a 500 with the route's prefix);
// status answered detailTunnelNoContainer in a 200 body.

const detailTunnelNoContainer = "No container/server"

// tunnelAction names a tunnel route for tunnelFailure.
type tunnelAction int

const (
	tunnelStart tunnelAction = iota
	tunnelStop
)

// tunnelExecDetail words a tunnel command that never ran to its end (any
// kind but execDone): the manager's text for a record without container,
// otherwise §3.9's (not running, server not available, timed out, the
// Docker error).
func tunnelExecDetail(ws registry.Workspace, err error, out execResponse) string {
	if errors.Is(err, orchestrator.ErrNoContainer) {
		return fmt.Sprintf("Workspace %s has no container/server", ws.ID)
	}
	return out.Stderr
}

// tunnelStatusDetail words a status command that never ran to its end:
// Python answered detailTunnelNoContainer for a record without container.
func tunnelStatusDetail(err error, out execResponse) string {
	if errors.Is(err, orchestrator.ErrNoContainer) {
		return detailTunnelNoContainer
	}
	return out.Stderr
}

// commandFailed words one of our own commands that ran and failed: its
// stderr, or its exit code when it said nothing.
func commandFailed(out execResponse) string {
	if s := strings.TrimSpace(out.Stderr); s != "" {
		return s
	}
	return fmt.Sprintf("exit code %d", out.ExitCode)
}

// tunnelFailure is the 500 of a start or stop that failed (§3.19).
func tunnelFailure(action tunnelAction, detail string) error {
	if action == tunnelStart {
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to start tunnel: "+detail)
	}
	return echo.NewHTTPError(http.StatusInternalServerError, "Failed to stop tunnel: "+detail)
}

// pidUnreadable is start's error when the command printed no PID. Python
// dropped it from the answer (§14 #16); we return it. When stdout is empty
// the command's stderr says why (cloudflared missing, log not writable).
func pidUnreadable(out execResponse) string {
	text := strings.TrimSpace(out.Stdout)
	if text == "" {
		text = commandFailed(out)
	}
	return "Failed to get PID: " + text
}

// detailTokenNUL refuses a token no command line can carry.
const detailTokenNUL = "token contains a NUL byte"

// Preview (§3.20): a listener whose process ss does not name is "unknown";
// a PortInfo without a process name is labelled "Port N".

const processUnknown = "unknown"

func portLabel(port int, processName string) string {
	if processName != "" {
		return processName
	}
	return fmt.Sprintf("Port %d", port)
}

// The preview proxy (§3.20) and the WebSocket proxy (§3.22). Where the
// contract is silent (the agent's own failures, its connection cap), the
// choices are ours and documented here.

const (
	detailServerUnavailable = "Workspace server not available"
	detailProxyTimeout      = "Request timed out"
)

// proxyFailure maps a failure of the preview proxy of workspace id, port:
//   - no record: 404; stored status not running, or the agent finds the
//     container stopped or gone: 503 (the contract's texts);
//   - nothing listens on the port (also a port outside 1–65535, where
//     nothing can): 502; no answer headers within the agent's 30 s: 504;
//   - the agent's cap of proxied requests per workspace: 429, naming the
//     cap and its setting (the contract has no such cap);
//   - the agent unreachable or shutting down, the server unknown, or a
//     stale placement epoch (the workspace moved meanwhile): 502 "Workspace
//     server not available", a gateway failure on our side rather than the
//     contract's "other ValueError" 500;
//   - anything else (a record without a container, the app dropping the
//     connection before answering): the contract's 500, worded by us
//     (internalFailure): the agent's text is logged, never answered.
func (a *API) proxyFailure(id string, port int, err error) error {
	var ae *agentclient.Error
	switch {
	case errors.Is(err, orchestrator.ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("Workspace %s not found", id))
	case errors.Is(err, orchestrator.ErrNotRunning), errors.Is(err, agentclient.ErrNotRunning), errors.Is(err, agentclient.ErrNotFound):
		return echo.NewHTTPError(http.StatusServiceUnavailable, fmt.Sprintf("Workspace %s is not running", id))
	case errors.Is(err, agentclient.ErrUpstreamRefused), errors.Is(err, errPortOutOfRange):
		return echo.NewHTTPError(http.StatusBadGateway,
			fmt.Sprintf("Could not connect to service on port %d. Is the development server running?", port))
	case errors.Is(err, agentclient.ErrUpstreamTimeout):
		return echo.NewHTTPError(http.StatusGatewayTimeout, detailProxyTimeout)
	case errors.Is(err, agentclient.ErrTooManyConnections):
		return echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
			"Too many open connections to workspace %s: its server allows at most BERTH_PROXY_MAX_CONNS (default 256) proxied requests per workspace at once. Try again later.", id))
	case errors.Is(err, orchestrator.ErrServerUnavailable), errors.Is(err, agentclient.ErrStaleEpoch):
		a.log.Warn("preview proxy: server not available", "workspace_id", id, "port", port, "error", err)
		return echo.NewHTTPError(http.StatusBadGateway, detailServerUnavailable)
	case errors.Is(err, orchestrator.ErrNoContainer):
		return echo.NewHTTPError(http.StatusInternalServerError, fmt.Sprintf("Workspace %s has no container", id))
	case errors.Is(err, agentclient.ErrUpstream):
		a.log.Warn("preview proxy failed", "workspace_id", id, "port", port, "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError,
			fmt.Sprintf("Proxy error: the service on port %d failed before it answered", port))
	case errors.As(err, &ae):
		a.log.Warn("preview proxy failed", "workspace_id", id, "port", port, "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Proxy error: "+internalFailure(err))
	}
	a.log.Error("preview proxy failed", "workspace_id", id, "port", port, "error", err)
	return echo.NewHTTPError(http.StatusInternalServerError, "Proxy error: "+internalFailure(err))
}

// errPortOutOfRange is a proxy target port outside 1–65535.
var errPortOutOfRange = errors.New("port out of range")

// socketClose is how the WebSocket proxy closes the client's socket.
type socketClose struct {
	code   websocket.StatusCode
	reason string
}

// Close codes of the WebSocket proxy's checks, before any upstream is
// dialled (§3.22, with the terminal's texts of §3.21 where they are
// shared).
var (
	socketInvalidID    = socketClose{websocket.StatusPolicyViolation, "Invalid workspace ID"}
	socketNotFound     = socketClose{websocket.StatusPolicyViolation, "Workspace not found"}
	socketNotRunning   = socketClose{websocket.StatusPolicyViolation, "Workspace is not running"}
	socketNoHost       = socketClose{websocket.StatusPolicyViolation, "Workspace not available"}
	socketBadTarget    = socketClose{websocket.StatusPolicyViolation, "Invalid target URI"}
	socketNoServer     = socketClose{websocket.StatusInternalError, detailServerUnavailable}
	socketShuttingDown = socketClose{websocket.StatusGoingAway, "Server is shutting down"}
	socketIdle         = socketClose{websocket.StatusGoingAway, "Idle timeout"}
	socketStalled      = socketClose{websocket.StatusInternalError, "Peer stopped reading"}
)

// socketTooMany refuses a WebSocket past the per-workspace cap (1013 Try
// Again Later; our cap, not the contract's).
func socketTooMany(limit int) socketClose {
	return socketClose{websocket.StatusTryAgainLater, fmt.Sprintf("Too many WebSockets open to this workspace (at most %d)", limit)}
}

// socketFailure maps a failure to open the upstream WebSocket of port
// (§3.22): refused, a failed handshake and an invalid target are 1008 with
// the contract's reasons; the checks' failures reported by the
// orchestrator or the agent map like the checks; the agent's connection cap
// is 1013; anything else is 1011 "Proxy error: …" in internalFailure's
// words (the error's own text stays in the log).
func socketFailure(port int, err error) socketClose {
	switch {
	case errors.Is(err, orchestrator.ErrNotFound):
		return socketNotFound
	case errors.Is(err, orchestrator.ErrNotRunning), errors.Is(err, agentclient.ErrNotRunning), errors.Is(err, agentclient.ErrNotFound):
		return socketNotRunning
	case errors.Is(err, orchestrator.ErrNoContainer):
		return socketNoHost
	case errors.Is(err, orchestrator.ErrServerUnavailable), errors.Is(err, agentclient.ErrStaleEpoch):
		return socketNoServer
	case errors.Is(err, agentclient.ErrUpstreamRefused):
		return socketClose{websocket.StatusPolicyViolation, fmt.Sprintf("Could not connect to port %d", port)}
	case errors.Is(err, agentclient.ErrUpstreamHandshake):
		return socketClose{websocket.StatusPolicyViolation, "Handshake failed"}
	case errors.Is(err, errPortOutOfRange), errors.Is(err, agentclient.ErrBadRequest):
		return socketBadTarget
	case errors.Is(err, agentclient.ErrTooManyConnections):
		return socketClose{websocket.StatusTryAgainLater, "Too many open connections to the workspace (BERTH_PROXY_MAX_CONNS on its server)"}
	}
	return socketClose{websocket.StatusInternalError, closeReason("Proxy error: " + internalFailure(err))}
}

// maxCloseReason is what a close frame's 125-byte payload leaves for the
// reason after the 2-byte code.
const maxCloseReason = 123

// closeReason cuts s to maxCloseReason bytes, on a UTF-8 boundary.
func closeReason(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// The terminal (§3.21): how GET /terminal/{id} closes beyond the checks it
// shares with the WebSocket proxy (socketInvalidID, socketNotFound,
// socketNotRunning, socketNoServer, socketShuttingDown), and the answers of
// DELETE /terminal/{id}/session/{sid}, always 200.

var (
	terminalNoContainer = socketClose{websocket.StatusPolicyViolation, "Workspace has no container"}
	terminalStartFailed = socketClose{websocket.StatusInternalError, "Failed to start terminal session"}
	// terminalEnded: the terminal's process ended (the tmux session was
	// killed or its shell exited). The contract names no reason.
	terminalEnded = socketClose{websocket.StatusNormalClosure, "Terminal session ended"}
)

// terminalTooMany refuses a terminal past the per-workspace cap (1013 Try
// Again Later; our cap, not the contract's).
func terminalTooMany(limit int) socketClose {
	return socketClose{websocket.StatusTryAgainLater, fmt.Sprintf("Too many terminals open on this workspace (at most %d)", limit)}
}

// terminalOpenFailure maps a failure of OpenTerminal: the checks' failures
// found late (the container stopped or went meanwhile) like the checks,
// an unreachable agent 1011 "Workspace server not available", anything
// else 1011 "Failed to start terminal session" (logged).
func (a *API) terminalOpenFailure(id string, err error) socketClose {
	switch {
	case errors.Is(err, orchestrator.ErrNotRunning):
		return socketNotRunning
	case errors.Is(err, orchestrator.ErrNoContainer):
		return terminalNoContainer
	case errors.Is(err, orchestrator.ErrServerUnavailable), errors.Is(err, agentclient.ErrStaleEpoch):
		a.log.Warn("terminal: server not available", "workspace_id", id, "error", err)
		return socketNoServer
	}
	a.log.Error("terminal session failed to start", "workspace_id", id, "error", err)
	return terminalStartFailed
}

// sessionAnswer is an answer of DELETE /terminal/{id}/session/{sid}.
type sessionAnswer struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var (
	sessionWorkspaceNotFound = sessionAnswer{"not_found", "Workspace not found"}
	sessionServerUnavailable = sessionAnswer{"error", detailServerUnavailable}
)

func sessionKilled(sid string) sessionAnswer {
	return sessionAnswer{"killed", fmt.Sprintf("Session %s killed", sid)}
}

func sessionNotFound(sid string) sessionAnswer {
	return sessionAnswer{"not_found", fmt.Sprintf("Session %s not found or already dead", sid)}
}
