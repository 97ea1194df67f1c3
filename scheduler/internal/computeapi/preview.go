package computeapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// The preview index and port list (§3.20) are token-only routes: no
// X-User-ID, no ownership check, and the id is not validated (an unknown
// one is simply not found). They answer from the stored record without a
// status sync.

const portsTimeout = 30 * time.Second

// portsCommand lists the listening TCP sockets with their processes,
// without the header line.
const portsCommand = "ss -Htlnp"

// portsExec runs the listing as dev, not root. ss names a socket's process
// only when it may read that process's /proc/<pid>/fd; in a workspace
// container root lacks CAP_SYS_PTRACE (Docker's default capabilities), so
// root's ss names no process at all (measured on berth/workspace:dev),
// while dev's names dev's own processes, which are the user's dev servers.
// Listeners of other users are still listed, as "unknown".
func portsExec() orchestrator.ExecRequest {
	return devExec(portsCommand, nil, portsTimeout)
}

// portInfo is PortInfo.
type portInfo struct {
	Port        int    `json:"port"`
	ProcessName string `json:"process_name"`
	State       string `json:"state"`
	Protocol    string `json:"protocol"`
	Label       string `json:"label"`
}

// newPortInfo builds PortInfo as the model did: state LISTEN, protocol
// http, label the process name or "Port N".
func newPortInfo(port int, processName string) portInfo {
	return portInfo{Port: port, ProcessName: processName, State: "LISTEN", Protocol: "http", Label: portLabel(port, processName)}
}

// previewInfo is PreviewInfo.
type previewInfo struct {
	WorkspaceID    string     `json:"workspace_id"`
	Status         string     `json:"status"`
	ActivePorts    []portInfo `json:"active_ports"`
	PreviewBaseURL string     `json:"preview_base_url"`
	ContainerID    *string    `json:"container_id"` // always null, as in Python
}

// minPreviewPort: ports up to it (system ports) are not listed.
const minPreviewPort = 1024

// parseListeners reads `ss -Htlnp` output into the port list: ports above
// 1024 only, one entry per port (the IPv4 and IPv6 listeners of a port are
// one; a named process wins over "unknown"), sorted by port.
func parseListeners(out string) []portInfo {
	names := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		port, name, ok := parseListener(line)
		if !ok || port <= minPreviewPort {
			continue
		}
		if have, seen := names[port]; !seen || (have == processUnknown && name != processUnknown) {
			names[port] = name
		}
	}
	ports := make([]portInfo, 0, len(names))
	for port, name := range names {
		ports = append(ports, newPortInfo(port, name))
	}
	slices.SortFunc(ports, func(a, b portInfo) int { return a.Port - b.Port })
	return ports
}

// parseListener reads one line of `ss -tlnp`: optional Netid and State
// columns, Recv-Q, Send-Q, the local address and port, the peer, then the
// process column `users:(("name",pid=…,fd=…),…)`. The process name is the
// first one's, "unknown" when there is none or it cannot be read. ok is
// false for a line without a local port (the header, a blank line).
func parseListener(line string) (port int, name string, ok bool) {
	head, proc, hasProc := strings.Cut(line, "users:((")
	f := strings.Fields(head)
	i := 0
	for i < len(f) && !isNumber(f[i]) { // Netid, State
		i++
	}
	if i+2 >= len(f) || !isNumber(f[i+1]) { // Recv-Q, Send-Q, local
		return 0, "", false
	}
	local := f[i+2]
	colon := strings.LastIndexByte(local, ':')
	if colon < 0 {
		return 0, "", false
	}
	port, err := strconv.Atoi(local[colon+1:])
	if err != nil || port < 1 || port > 65535 {
		return 0, "", false
	}
	name = processUnknown
	if hasProc {
		if n, ok := processName(proc); ok && n != "" {
			name = n
		}
	}
	return port, name, true
}

// processName is the first quoted name of an ss process column, after
// `users:((`: `"node",pid=7,fd=20)),…`. Names may hold spaces and commas;
// the name ends at `",pid=`.
func processName(proc string) (string, bool) {
	rest, ok := strings.CutPrefix(proc, `"`)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, `",pid=`)
	return name, ok
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// activePorts lists the workspace's listening ports; any failure (no
// container, not running, the command failing) gives an empty list.
func (a *API) activePorts(ctx context.Context, ws registry.Workspace) []portInfo {
	res, err := a.d.Workspaces.Exec(ctx, ws, portsExec())
	out, kind := a.execOutcome(ws, res, err)
	if kind != execDone || out.ExitCode != 0 {
		a.log.Debug("no port list; answering []", "workspace_id", ws.ID, "exit_code", out.ExitCode, "error", out.Stderr)
		return []portInfo{}
	}
	return parseListeners(out.Stdout)
}

// previewWorkspace is the stored record of the path's id.
func (a *API) previewWorkspace(c echo.Context) (registry.Workspace, error) {
	ws, err := a.d.Workspaces.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return registry.Workspace{}, a.fail(opLookup, err)
	}
	return ws, nil
}

// preview is GET /preview/{id} (§3.20).
func (a *API) preview(c echo.Context) error {
	ws, err := a.previewWorkspace(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	return writeJSON(c, http.StatusOK, previewInfo{
		WorkspaceID:    id,
		Status:         string(ws.Status),
		ActivePorts:    a.activePorts(c.Request().Context(), ws),
		PreviewBaseURL: "/preview/" + id + "/proxy",
	})
}

// previewPorts is GET /preview/{id}/ports (§3.20).
func (a *API) previewPorts(c echo.Context) error {
	ws, err := a.previewWorkspace(c)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, a.activePorts(c.Request().Context(), ws))
}
