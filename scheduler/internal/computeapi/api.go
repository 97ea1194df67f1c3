package computeapi

import (
	"context"
	"io"
	"net/http"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/httpbudget"
	"berth/shared/wire"
)

// Workspaces is the part of the orchestrator the compute API drives.
type Workspaces interface {
	// Create places and starts a workspace. It is idempotent per workspace
	// id: the same owner gets the existing record back, another owner
	// orchestrator.ErrOwnedByOther.
	Create(ctx context.Context, req orchestrator.CreateRequest) (registry.Workspace, error)
	// Get returns the stored record; orchestrator.ErrNotFound if none.
	Get(ctx context.Context, id string) (registry.Workspace, error)
	// Sync refreshes the status from the live container (§8.2 "on request"
	// column) and saves it; pending_deletion is sticky.
	Sync(ctx context.Context, ws registry.Workspace) (registry.Workspace, error)
	List(ctx context.Context, userID, sessionID string) ([]registry.Workspace, error)
	Stop(ctx context.Context, ws registry.Workspace) error
	// Restart: orchestrator.ErrNoContainer, or another error.
	Restart(ctx context.Context, ws registry.Workspace) error
	Delete(ctx context.Context, ws registry.Workspace) error
	MarkForDeletion(ctx context.Context, ws registry.Workspace) error
	// MarkHomeForDeletion asks for the home directory of a deleted
	// workspace (DELETE keeps it) to be removed; only its owner may.
	// orchestrator.ErrNotFound when the id has no home of userID's,
	// ErrExists when it has a record.
	MarkHomeForDeletion(ctx context.Context, id, userID string) error
	Heartbeat(ctx context.Context, ws registry.Workspace) error
	// NoteActivity records use of the workspace by a stream (terminal
	// bytes, proxied requests and messages) for the idle stop; no I/O.
	NoteActivity(id string)
	// Exec and ExecStream fail with orchestrator.ErrNoContainer,
	// ErrNotRunning or ErrServerUnavailable; any other error means the
	// Docker exec failed. A timeout is a result with TimedOut set.
	// ExecStream's onOutput may keep data: callers never reuse it
	// (POST …/exec keeps the chunks until it answers, execout.go).
	Exec(ctx context.Context, ws registry.Workspace, req orchestrator.ExecRequest) (orchestrator.ExecResult, error)
	ExecStream(ctx context.Context, ws registry.Workspace, req orchestrator.ExecRequest, onOutput func(stream string, data []byte) error) (orchestrator.ExecResult, error)
	// ExecRaw runs a command with its input streamed from stdin (size
	// bytes, -1 when unknown; nil: none) and its output streamed to stdout
	// as the process writes it; stderr comes back in the result, cut at
	// wire.ExecRawStderrLimit. It fails as Exec does (also
	// ErrServerUnavailable when the stream broke off); an error of
	// stdout's Write comes back wrapped.
	ExecRaw(ctx context.Context, ws registry.Workspace, req orchestrator.ExecRequest, stdin io.Reader, size int64, stdout io.Writer) (orchestrator.ExecResult, error)
	Resources(ctx context.Context, ws registry.Workspace) (wire.ContainerStats, error)
	// ScaleOptions lists the tiers the workspace can move to (§3.16).
	ScaleOptions(ctx context.Context, ws registry.Workspace) (orchestrator.ScaleOptions, error)
	// Scale moves the workspace to another tier (§3.17). A refusal (same
	// tier, no room) is a result with Success false; an error is a 500.
	Scale(ctx context.Context, ws registry.Workspace, newTier string) (orchestrator.ScaleResult, error)
	// AppProxy and DialApp reach an app listening on a port of the
	// workspace's container, through its agent (proxy.go, wsproxy.go). Both
	// fail with orchestrator.ErrNotRunning (stored status), ErrNoContainer
	// or ErrServerUnavailable; AppProxy's handler reports later failures to
	// opts.ErrorHandler, DialApp returns them (agentclient's upstream
	// errors).
	AppProxy(ctx context.Context, ws registry.Workspace, port int, opts agentclient.ProxyOptions) (http.Handler, error)
	DialApp(ctx context.Context, ws registry.Workspace, port int, path string, subprotocols []string) (*websocket.Conn, error)
	// OpenTerminal attaches a terminal to the tmux session of req (created
	// if absent) for as long as ctx lasts (terminal.go). It fails with
	// orchestrator.ErrNoContainer, ErrNotRunning or ErrServerUnavailable;
	// anything else is a session that failed to start.
	OpenTerminal(ctx context.Context, ws registry.Workspace, req orchestrator.TerminalRequest) (*agentclient.TTY, error)
	// KillTerminalSession kills a terminal session's tmux session; killed
	// is false when there was none. orchestrator.ErrServerUnavailable: the
	// workspace has no server or its agent does not answer.
	KillTerminalSession(ctx context.Context, ws registry.Workspace, session string) (killed bool, err error)
}

// Deps are what the compute API reads and drives.
type Deps struct {
	Workspaces   Workspaces
	ServiceToken string // INTERNAL_SERVICE_TOKEN; "" fails closed (500)
	Log          hclog.Logger
	Version      string       // reported by GET /health
	Streams      StreamLimits // zero: DefaultStreamLimits
	// FileLimit bounds a file read or written through …/files/content,
	// in bytes (BERTH_FILE_LIMIT); zero: DefaultFileLimit.
	FileLimit int64
	// SpoolDir holds the temporary files of big file writes; "":
	// os.TempDir().
	SpoolDir string
	// ServiceTokenNext is accepted as well as ServiceToken during a
	// rotation (INTERNAL_SERVICE_TOKEN_NEXT); "": none.
	ServiceTokenNext string
	// Request budgets (budgets.go). JSONBodyLimit bounds the body of a
	// route that takes JSON, in bytes (BERTH_JSON_BODY_LIMIT); zero:
	// DefaultJSONBodyLimit. UserExecs and UserTransfers bound what one
	// X-User-ID runs at once: execs (exec, exec-stream) and file transfers
	// (files/content); zero: DefaultUserExecs, DefaultUserTransfers. HTTP
	// holds the server's stall bound, applied to the streaming routes;
	// zero: httpbudget.Default().
	JSONBodyLimit int64
	UserExecs     int
	UserTransfers int
	HTTP          httpbudget.Timeouts
}

// DefaultFileLimit is the largest file …/files/content reads or writes by
// default: 100 MiB.
const DefaultFileLimit = 100 << 20

// API serves the compute routes. Safe for concurrent use.
type API struct {
	d       Deps
	log     hclog.Logger
	streams *streams    // open terminals and proxied WebSockets
	relay   relayLimits // the WebSocket proxy's bounds (wsproxy.go); zero: defaultRelayLimits

	execs     *userLimit // Deps.UserExecs per user
	transfers *userLimit // Deps.UserTransfers per user
}

// New builds the compute API.
func New(d Deps) *API {
	log := d.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if d.Streams.Terminals <= 0 {
		d.Streams.Terminals = DefaultStreamLimits.Terminals
	}
	if d.Streams.Sockets <= 0 {
		d.Streams.Sockets = DefaultStreamLimits.Sockets
	}
	if d.FileLimit <= 0 {
		d.FileLimit = DefaultFileLimit
	}
	if d.JSONBodyLimit <= 0 {
		d.JSONBodyLimit = DefaultJSONBodyLimit
	}
	if d.UserExecs <= 0 {
		d.UserExecs = DefaultUserExecs
	}
	if d.UserTransfers <= 0 {
		d.UserTransfers = DefaultUserTransfers
	}
	d.HTTP = d.HTTP.OrDefault()
	return &API{d: d, log: log, streams: newStreams(), execs: newUserLimit(d.UserExecs), transfers: newUserLimit(d.UserTransfers)}
}

// Register mounts the routes on e. Middleware is per route, never on a
// group: echo's Group.Use would turn unknown paths and wrong methods under
// the prefix into authenticated 404s instead of the framework's plain
// 404/405 (§1.3). e should use ErrorHandler.
func (a *API) Register(e *echo.Echo) {
	user, userJSON := a.guard(false), a.guard(true)
	// Starlette answers HEAD wherever it answers GET (load balancers probe
	// /health with it); net/http drops the body.
	get := func(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.GET(path, h, m...)
		e.HEAD(path, h, m...)
	}

	e.POST("/workspaces", a.create, userJSON)
	get("/workspaces", a.list, user)
	get("/workspaces/:id", a.get, user)
	e.DELETE("/workspaces/:id", a.delete, user)
	e.POST("/workspaces/:id/stop", a.stop, user)
	e.POST("/workspaces/:id/restart", a.restart, user)
	e.POST("/workspaces/:id/mark-for-deletion", a.markForDeletion, user)
	e.POST("/workspaces/:id/heartbeat", a.heartbeat, user)
	// Long by nature: bounded by their exec timeout and by progress
	// (streaming), not by the server's whole-request timeouts.
	e.POST("/workspaces/:id/exec", a.exec, userJSON, a.streaming)
	e.POST("/workspaces/:id/exec-stream", a.execStream, userJSON, a.streaming)
	get("/workspaces/:id/files", a.listFiles, user)
	e.DELETE("/workspaces/:id/files", a.deleteFile, user)
	get("/workspaces/:id/files/content", a.readFile, user, a.streaming)
	// Reads its body as a stream (files.go), bounded by the file limit.
	e.PUT("/workspaces/:id/files/content", a.writeFile, user, a.streaming)
	get("/workspaces/:id/health", a.health, user)
	get("/workspaces/:id/resources", a.resources, user)
	get("/workspaces/:id/scale-options", a.scaleOptions, user)
	e.POST("/workspaces/:id/scale", a.scale, userJSON)
	e.POST("/workspaces/:id/tunnels/start", a.startTunnel, userJSON)
	e.POST("/workspaces/:id/tunnels/stop", a.stopTunnel, userJSON)
	get("/workspaces/:id/tunnels/status", a.tunnelStatus, user)

	// Preview (§3.20): the service token only, no X-User-ID.
	get("/preview/:id", a.preview, a.tokenOnly)
	get("/preview/:id/ports", a.previewPorts, a.tokenOnly)
	a.registerProxy(e) // proxy.go, wsproxy.go: /preview/:id/proxy/:port/*, /preview/:id/app/*, /ws/:id/:port[/*]

	// Terminal (§3.21): the token only, checked before the upgrade.
	e.GET("/terminal/:id", a.terminal, webSocketOnly, a.socketToken, a.streaming)
	e.DELETE("/terminal/:id/session/:sid", a.killTerminalSession, a.tokenOnly)

	get("/health", a.serviceHealth)
	get("/ready", a.ready)
	get("/", a.root, a.tokenOnly)
}

// serviceHealth is §3.23 plus a version field, which the API's doctor reads
// (today it shows "unknown"); extra fields are harmless.
func (a *API) serviceHealth(c echo.Context) error {
	return writeJSON(c, http.StatusOK, map[string]string{"status": "healthy", "service": "compute", "version": a.d.Version})
}

func (a *API) ready(c echo.Context) error {
	return writeJSON(c, http.StatusOK, map[string]string{"status": "ready", "service": "compute"})
}

func (a *API) root(c echo.Context) error {
	return writeJSON(c, http.StatusOK, map[string]string{"service": "podex-compute", "version": "0.1.0"})
}
