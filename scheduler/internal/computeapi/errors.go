package computeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
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
)

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

// fail maps an orchestrator error of operation o to the HTTP error the
// contract gives for it. Unexpected errors are logged here.
func (a *API) fail(o op, err error) error {
	if errors.Is(err, orchestrator.ErrNotFound) {
		return errNotFound
	}
	var (
		perr     *orchestrator.PlacementError
		ierr     *orchestrator.ImageMissingError
		unusable *orchestrator.ServerUnusableError
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
		case errors.Is(err, orchestrator.ErrCreateFailed):
			a.log.Warn("create failed", "error", err)
			return echo.NewHTTPError(http.StatusServiceUnavailable, detailCreateFailed)
		case errors.Is(err, orchestrator.ErrStartFailed):
			a.log.Warn("create failed", "error", err)
			return echo.NewHTTPError(http.StatusServiceUnavailable, detailStartFailed)
		}
		a.log.Error("create failed", "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError,
			fmt.Sprintf("Failed to create workspace: %s: %s", typeName(err), err))
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
		}
		return echo.NewHTTPError(http.StatusNotFound, "Failed to start workspace: "+err.Error())
	case opDelete:
		a.log.Error("delete failed", "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to delete workspace: "+err.Error())
	case opScale:
		detail := err.Error()
		switch {
		case errors.Is(err, orchestrator.ErrNoServerAssignment):
			detail = detailNoServerAssign
		case errors.As(err, &unusable):
			detail = fmt.Sprintf("Server %s not found or unhealthy", unusable.ServerID)
		case errors.Is(err, orchestrator.ErrScaleNoContainer):
			detail = detailScaleNoContainer
		default:
			a.log.Error("scale failed", "error", err)
		}
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to scale workspace: "+detail)
	case opMark:
		a.log.Error("mark for deletion failed", "error", err)
		return echo.NewHTTPError(http.StatusInternalServerError, "Failed to mark workspace for deletion: "+err.Error())
	}
	a.log.Error("request failed", "op", string(o), "error", err)
	return errInternal
}

// typeName stands in for Python's type(e).__name__ in the create 500: the
// Go type of the innermost error, without pointer or package.
func typeName(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	name := strings.TrimLeft(fmt.Sprintf("%T", err), "*")
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name
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
// response /exec returns with 200.
func execOutcome(ws registry.Workspace, res orchestrator.ExecResult, err error) (execResponse, execKind) {
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
		return execResponse{ExitCode: 1, Stderr: err.Error()}, execFailed
	}
	// Python decoded the output as UTF-8 and failed the exec if it was not.
	for _, out := range [][]byte{res.Stdout, res.Stderr} {
		if i := invalidUTF8At(out); i >= 0 {
			return execResponse{ExitCode: 1, Stderr: fmt.Sprintf(
				"output is not valid UTF-8 (byte 0x%02x at offset %d)", out[i], i)}, execFailed
		}
	}
	return execResponse{ExitCode: res.ExitCode, Stdout: string(res.Stdout), Stderr: string(res.Stderr)}, execDone
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
