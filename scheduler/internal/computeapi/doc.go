// Package computeapi serves the podex-compatible compute routes
// (shared/compute-api-contract.md §1–§3, §5): /workspaces/**, /preview/**,
// /terminal/**, /ws/**, /health, /ready and /. It is the first hop of every podex call: it authenticates
// (service token, X-User-ID), validates bodies the way FastAPI/pydantic did
// (the 422 list format), checks ownership, and hands the operation to the
// orchestrator through the small Workspaces interface it owns. Everything
// that touches a container runs through Workspaces.Exec/ExecStream/ExecRaw
// as user dev, with every path quoted by shellQuote.
//
// Files:
//   - api.go: Deps, API, the Workspaces interface and the route table.
//   - guard.go: the checks that run before a handler: X-User-ID, token,
//     then the JSON body, bounded (issue 12 moved the body last, a
//     deliberate deviation from §1.2 for unauthenticated malformed bodies).
//   - budgets.go: the per-user limits on execs and file transfers (429)
//     and the streaming routes' exemption from the server's whole-request
//     timeouts (berth/shared/httpbudget).
//   - validate.go: the pydantic-style 422 list format.
//   - errors.go: the one place that maps errors to status/detail, and exec
//     failures to exit codes (§3.9); ErrorHandler for echo. The layers below
//     return sentinels, typed errors and enums; every contract text is
//     written here (and in scale.go for scale's answers), nowhere else.
//   - info.go: response shapes (WorkspaceInfo, resources) and the
//     pydantic JSON formats of datetimes and floats.
//   - workspaces.go, exec.go, files.go: the handlers; execout.go collects
//     /exec's output from its stream and writes the answer piece by piece. The file content
//     routes stream, bounded by Deps.FileLimit: filebody.go reads a write's
//     body as a stream into a spool (spool.go), filestream.go and
//     jsonstream.go turn a read's output into its JSON answer piece by
//     piece.
//   - scale.go: scale-options and scale (§3.16, §3.17), with their shapes.
//   - tunnels.go: tunnels (§3.19), cloudflared run inside the workspace.
//   - preview.go, inject.go, devtools.js: the preview index and ports
//     (§3.20) and the DevTools bridge injected into proxied HTML.
//   - proxy.go, wsproxy.go, terminal.go: the streams (§3.20–§3.22), each
//     through the workspace's agent over mTLS; streams.go bounds them per
//     workspace and ends them on shutdown.
//
// An API is safe for concurrent use; it keeps no state of its own.
package computeapi
