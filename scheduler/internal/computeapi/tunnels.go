package computeapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The tunnel routes (§3.19) drive cloudflared inside the container, as dev
// in /home/dev with a 30 s exec timeout, through Workspaces.Exec.
//
// One tunnel per port. Every cloudflared that start launches carries
// BERTH_TUNNEL_PORT=<port> in its environment, and start and stop find a
// port's tunnel by that marker (/proc/<pid>/environ, which dev can read for
// its own processes). So:
//   - stop kills the tunnel of that port and nothing else, http or ssh
//     alike (ssh tunnels have no --url to recognise them by; §14 #16);
//   - start is idempotent per port (§14 #8): a tunnel of the port running
//     with the same command line is kept and its PID answered, so a retried
//     POST starts nothing; one with another token or type is replaced.
//
// The token is a secret. It reaches the container on the exec's stdin, not
// in the exec's command (Docker records exec commands in its events), and
// it is never logged. cloudflared's own command line still holds it, as the
// contract's `cloudflared tunnel run --token <token>` does, so status masks
// it (maskToken).

const (
	tunnelTimeout = 30 * time.Second
	tunnelPortEnv = "BERTH_TUNNEL_PORT"
)

// serviceTypePattern is TunnelStartRequest.service_type's constraint.
var serviceTypePattern = regexp.MustCompile(`^(http|ssh)$`)

// tunnelStartRequest is TunnelStartRequest.
type tunnelStartRequest struct {
	token       string
	port        int
	serviceType string // http or ssh
}

// decodeTunnelStart validates TunnelStartRequest: token required, port
// 1..65535 required, service_type http|ssh defaulting to http.
func decodeTunnelStart(b requestBody) (tunnelStartRequest, error) {
	var v validator
	body := v.body(b)
	token := body.requiredString("token")
	port := body.requiredInt("port", between(1, 65535))
	serviceType := body.patternString("service_type", "http", serviceTypePattern)
	if err := v.err(); err != nil {
		return tunnelStartRequest{}, err
	}
	return tunnelStartRequest{token: token, port: int(port), serviceType: serviceType}, nil
}

// decodeTunnelStop validates TunnelStopRequest: port 1..65535 required.
func decodeTunnelStop(b requestBody) (int, error) {
	var v validator
	port := v.body(b).requiredInt("port", between(1, 65535))
	if err := v.err(); err != nil {
		return 0, err
	}
	return int(port), nil
}

// tunnelLogPath is where a port's cloudflared writes its output.
func tunnelLogPath(port int) string { return fmt.Sprintf("/tmp/cloudflared-%d.log", port) }

// tunnelMarker is the environment entry that names a tunnel's port.
func tunnelMarker(port int) string { return fmt.Sprintf("%s=%d", tunnelPortEnv, port) }

// tunnelArgv is cloudflared's command line for a tunnel as shell words,
// the token being the shell variable $token: `cloudflared tunnel run
// --token T`, plus `--url http://localhost:<port>` for http (ssh tunnels
// take their ingress from the tunnel's remote configuration).
func tunnelArgv(port int, serviceType string) string {
	argv := `cloudflared tunnel run --token "$token"`
	if serviceType == "http" {
		argv += " --url " + shellQuote(fmt.Sprintf("http://localhost:%d", port))
	}
	return argv
}

// portTunnels is a loop over the PIDs of the port's cloudflared processes
// (by the environment marker); body runs with $p set.
func portTunnels(port int, body string) string {
	return "for p in $(pgrep -x cloudflared); do\n" +
		"  grep -qzxF -e " + shellQuote(tunnelMarker(port)) + " /proc/$p/environ 2>/dev/null || continue\n" +
		"  " + body + "\n" +
		"done\n"
}

// stopPIDs ends the processes in $pids: SIGTERM, up to 5 s for them to
// exit, then SIGKILL.
const stopPIDs = `if [ -n "$pids" ]; then
  kill $pids 2>/dev/null
  for i in $(seq 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
  kill -0 $pids 2>/dev/null && kill -KILL $pids 2>/dev/null
fi
`

// startTunnelCommand starts the port's tunnel in the background with nohup
// and prints its PID, reading the token from stdin. A tunnel of the port
// with the same command line is kept (its PID is printed); any other
// tunnel of the port is stopped first. It prints no PID, and says why on
// stderr, when cloudflared is missing or the log cannot be written.
func startTunnelCommand(port int, serviceType string) string {
	argv := tunnelArgv(port, serviceType)
	logPath := shellQuote(tunnelLogPath(port))
	return "command -v cloudflared >/dev/null || { echo 'cloudflared is not installed in this workspace' >&2; exit 127; }\n" +
		"IFS= read -r -d '' token\n" +
		"keep= pids=\n" +
		portTunnels(port, `if [ -z "$keep" ] && cmp -s /proc/$p/cmdline <(printf '%s\0' `+argv+`); then keep=$p; else pids="$pids $p"; fi`) +
		stopPIDs +
		`if [ -n "$keep" ]; then echo "$keep"; exit 0; fi` + "\n" +
		": >" + logPath + " || exit 1\n" +
		tunnelPortEnv + "=" + shellQuote(strconv.Itoa(port)) + " nohup " + argv + " >>" + logPath + " 2>&1 </dev/null & echo $!"
}

// stopTunnelCommand stops the port's tunnel; nothing to stop is a success.
func stopTunnelCommand(port int) string {
	return "pids=\n" +
		portTunnels(port, `pids="$pids $p"`) +
		stopPIDs +
		"exit 0"
}

// statusTunnelCommand lists the cloudflared processes (all of them, ours or
// not, as Python's `pgrep -a cloudflared` did), one line each: the PID and
// the base64 of /proc/<pid>/cmdline, so that the arguments arrive exactly
// (NUL-separated) and the token can be masked exactly. None is a success.
const statusTunnelCommand = "pids=$(pgrep cloudflared); rc=$?; [ $rc -le 1 ] || exit $rc\n" +
	"for p in $pids; do c=$(base64 -w0 /proc/$p/cmdline 2>/dev/null) && echo \"$p $c\"; done\n" +
	"exit 0"

// tunnelResponse is TunnelStartResponse and TunnelStatusResponse.
type tunnelResponse struct {
	Status string  `json:"status"`
	PID    *int    `json:"pid"`
	Error  *string `json:"error"`
}

// tunnelProcess is one entry of status's processes.
type tunnelProcess struct {
	PID int    `json:"pid"`
	Cmd string `json:"cmd"`
}

// parseTunnelProcesses reads statusTunnelCommand's output. A process
// whose command line is empty (it is exiting) or unreadable is skipped.
// cmd is the arguments joined by spaces, as `pgrep -a` shows them, with
// the token masked.
func parseTunnelProcesses(out string) []tunnelProcess {
	procs := []tunnelProcess{}
	for _, line := range strings.Split(out, "\n") {
		pid, b64, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(pid)
		if err != nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		procs = append(procs, tunnelProcess{PID: n, Cmd: strings.Join(maskToken(args), " ")})
	}
	return procs
}

// maskedToken stands for a token in the commands status returns (the same
// mask as secret environment values, §15 quirk 20).
const maskedToken = "***"

// maskToken returns args with tunnel tokens masked. Status returns
// cloudflared's command lines (§3.19) and Python's carried the token in
// clear; ours carry "***" in its place: the argument after --token or
// -token, and the value of --token=… or -token=….
func maskToken(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		name, _, hasValue := strings.Cut(out[i], "=")
		if name != "--token" && name != "-token" {
			continue
		}
		if hasValue {
			out[i] = name + "=" + maskedToken
		} else if i+1 < len(out) {
			i++
			out[i] = maskedToken
		}
	}
	return out
}

// startTunnel is POST …/tunnels/start (§3.19). A command that could not
// run is a 500; one that printed no PID is a 200 with status "error" and
// the reason (Python dropped it, §14 #16).
func (a *API) startTunnel(c echo.Context) error {
	req, err := decodeTunnelStart(bodyOf(c))
	if err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	if strings.ContainsRune(req.token, 0) {
		return tunnelFailure(tunnelStart, detailTokenNUL)
	}
	res, err := a.d.Workspaces.Exec(c.Request().Context(), ws,
		devExec(startTunnelCommand(req.port, req.serviceType), []byte(req.token), tunnelTimeout))
	out, kind := a.execOutcome(ws, res, err)
	if kind != execDone {
		detail := tunnelExecDetail(ws, err, out)
		a.log.Warn("tunnel start failed", "workspace_id", ws.ID, "port", req.port, "error", detail)
		return tunnelFailure(tunnelStart, detail)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(out.Stdout))
	if out.ExitCode != 0 || perr != nil || pid <= 0 {
		msg := pidUnreadable(out)
		a.log.Warn("tunnel start printed no pid", "workspace_id", ws.ID, "port", req.port, "exit_code", out.ExitCode, "error", msg)
		return writeJSON(c, http.StatusOK, tunnelResponse{Status: "error", Error: &msg})
	}
	a.log.Info("tunnel running", "workspace_id", ws.ID, "port", req.port, "service_type", req.serviceType, "pid", pid)
	return writeJSON(c, http.StatusOK, tunnelResponse{Status: "running", PID: &pid})
}

// stopTunnel is POST …/tunnels/stop (§3.19): stops the port's tunnel only.
func (a *API) stopTunnel(c echo.Context) error {
	port, err := decodeTunnelStop(bodyOf(c))
	if err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	res, err := a.d.Workspaces.Exec(c.Request().Context(), ws, devExec(stopTunnelCommand(port), nil, tunnelTimeout))
	out, kind := a.execOutcome(ws, res, err)
	if kind != execDone || out.ExitCode != 0 {
		detail := commandFailed(out)
		if kind != execDone {
			detail = tunnelExecDetail(ws, err, out)
		}
		a.log.Warn("tunnel stop failed", "workspace_id", ws.ID, "port", port, "error", detail)
		return tunnelFailure(tunnelStop, detail)
	}
	a.log.Info("tunnel stopped", "workspace_id", ws.ID, "port", port)
	return writeJSON(c, http.StatusOK, tunnelResponse{Status: "stopped"})
}

// tunnelStatus is GET …/tunnels/status (§3.19): every failure is a 200
// with status "error".
func (a *API) tunnelStatus(c echo.Context) error {
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	res, err := a.d.Workspaces.Exec(c.Request().Context(), ws, devExec(statusTunnelCommand, nil, tunnelTimeout))
	out, kind := a.execOutcome(ws, res, err)
	if kind != execDone || out.ExitCode != 0 {
		detail := commandFailed(out)
		if kind != execDone {
			detail = tunnelStatusDetail(err, out)
		}
		a.log.Debug("tunnel status failed", "workspace_id", ws.ID, "error", detail)
		return writeJSON(c, http.StatusOK, map[string]string{"status": "error", "error": detail})
	}
	procs := parseTunnelProcesses(out.Stdout)
	status := "running"
	if len(procs) == 0 {
		status = "stopped"
	}
	return writeJSON(c, http.StatusOK, map[string]any{"status": status, "processes": procs})
}
