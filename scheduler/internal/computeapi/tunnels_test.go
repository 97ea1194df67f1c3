package computeapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
)

// execResult is an execFn answering one result.
func execResult(code int, stdout, stderr string) func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
	return func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		return orchestrator.ExecResult{ExitCode: code, Stdout: []byte(stdout), Stderr: []byte(stderr)}, nil
	}
}

// execErr is an execFn failing with err.
func execErr(err error) func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
	return func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) { return orchestrator.ExecResult{}, err }
}

const sampleToken = "eyJhIjoiYWNjdCIsInQiOiI2ZmY0MmFlMi03NjVkLTRhZGYtODExMi0zMWM1NWMxNTUxZWYiLCJzIjoiYzJWamNtVjAifQ=="

// The exact commands the routes send, for the table below.
const (
	wantStart3000 = `command -v cloudflared >/dev/null || { echo 'cloudflared is not installed in this workspace' >&2; exit 127; }
IFS= read -r -d '' token
keep= pids=
for p in $(pgrep -x cloudflared); do
  grep -qzxF -e 'BERTH_TUNNEL_PORT=3000' /proc/$p/environ 2>/dev/null || continue
  if [ -z "$keep" ] && cmp -s /proc/$p/cmdline <(printf '%s\0' cloudflared tunnel run --token "$token" --url 'http://localhost:3000'); then keep=$p; else pids="$pids $p"; fi
done
if [ -n "$pids" ]; then
  kill $pids 2>/dev/null
  for i in $(seq 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
  kill -0 $pids 2>/dev/null && kill -KILL $pids 2>/dev/null
fi
if [ -n "$keep" ]; then echo "$keep"; exit 0; fi
: >'/tmp/cloudflared-3000.log' || exit 1
BERTH_TUNNEL_PORT='3000' nohup cloudflared tunnel run --token "$token" --url 'http://localhost:3000' >>'/tmp/cloudflared-3000.log' 2>&1 </dev/null & echo $!`
	wantStart2222SSH = `command -v cloudflared >/dev/null || { echo 'cloudflared is not installed in this workspace' >&2; exit 127; }
IFS= read -r -d '' token
keep= pids=
for p in $(pgrep -x cloudflared); do
  grep -qzxF -e 'BERTH_TUNNEL_PORT=2222' /proc/$p/environ 2>/dev/null || continue
  if [ -z "$keep" ] && cmp -s /proc/$p/cmdline <(printf '%s\0' cloudflared tunnel run --token "$token"); then keep=$p; else pids="$pids $p"; fi
done
if [ -n "$pids" ]; then
  kill $pids 2>/dev/null
  for i in $(seq 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
  kill -0 $pids 2>/dev/null && kill -KILL $pids 2>/dev/null
fi
if [ -n "$keep" ]; then echo "$keep"; exit 0; fi
: >'/tmp/cloudflared-2222.log' || exit 1
BERTH_TUNNEL_PORT='2222' nohup cloudflared tunnel run --token "$token" >>'/tmp/cloudflared-2222.log' 2>&1 </dev/null & echo $!`
	wantStop3000 = `pids=
for p in $(pgrep -x cloudflared); do
  grep -qzxF -e 'BERTH_TUNNEL_PORT=3000' /proc/$p/environ 2>/dev/null || continue
  pids="$pids $p"
done
if [ -n "$pids" ]; then
  kill $pids 2>/dev/null
  for i in $(seq 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
  kill -0 $pids 2>/dev/null && kill -KILL $pids 2>/dev/null
fi
exit 0`
	wantStatus = `pids=$(pgrep cloudflared); rc=$?; [ $rc -le 1 ] || exit $rc
for p in $pids; do c=$(base64 -w0 /proc/$p/cmdline 2>/dev/null) && echo "$p $c"; done
exit 0`
)

// statusLine is one line of the status command's output for a process
// with these arguments.
func statusLine(pid int, args ...string) string {
	return fmt.Sprintf("%d %s\n", pid, base64.StdEncoding.EncodeToString([]byte(strings.Join(args, "\x00")+"\x00")))
}

func TestTunnelRoutes(t *testing.T) {
	dev := func(cmd, stdin string) *orchestrator.ExecRequest {
		r := orchestrator.ExecRequest{Command: cmd, WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}
		if stdin != "" {
			r.Stdin = []byte(stdin)
		}
		return &r
	}
	notRunning := execErr(fmt.Errorf("%w (status: stopped)", orchestrator.ErrNotRunning))
	startBody := `{"token":"` + sampleToken + `","port":3000}`
	tests := []struct {
		name       string
		method     string
		path, body string
		header     map[string]string
		syncStatus fleet.Status
		execFn     func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)
		wantStatus int
		wantBody   string
		wantExec   *orchestrator.ExecRequest
	}{
		// start
		{name: "start http", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execResult(0, "4242\n", ""), wantStatus: 200, wantBody: `{"status":"running","pid":4242,"error":null}`,
			wantExec: dev(wantStart3000, sampleToken)},
		{name: "start http explicitly", method: "POST", path: "/workspaces/ws1/tunnels/start",
			body: `{"token":"t","port":3000,"service_type":"http"}`, execFn: execResult(0, "7\n", ""),
			wantStatus: 200, wantBody: `{"status":"running","pid":7,"error":null}`, wantExec: dev(wantStart3000, "t")},
		{name: "start ssh", method: "POST", path: "/workspaces/ws1/tunnels/start",
			body: `{"token":"t","port":"2222","service_type":"ssh"}`, execFn: execResult(0, "99\n", ""),
			wantStatus: 200, wantBody: `{"status":"running","pid":99,"error":null}`, wantExec: dev(wantStart2222SSH, "t")},
		{name: "start with a token that needs quoting goes in on stdin", method: "POST", path: "/workspaces/ws1/tunnels/start",
			body: `{"token":"a'b $(touch pwned) \"c\"\n","port":3000}`, execFn: execResult(0, "5\n", ""),
			wantStatus: 200, wantBody: `{"status":"running","pid":5,"error":null}`,
			wantExec: dev(wantStart3000, "a'b $(touch pwned) \"c\"\n")},
		{name: "start: no pid", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execResult(127, "", "cloudflared is not installed in this workspace\n"), wantStatus: 200,
			wantBody: `{"status":"error","pid":null,"error":"Failed to get PID: cloudflared is not installed in this workspace"}`,
			wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: garbage instead of a pid", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execResult(0, "bash: oops\n", ""), wantStatus: 200,
			wantBody: `{"status":"error","pid":null,"error":"Failed to get PID: bash: oops"}`, wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: silent failure", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execResult(1, "", ""), wantStatus: 200,
			wantBody: `{"status":"error","pid":null,"error":"Failed to get PID: exit code 1"}`, wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: no container", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execErr(orchestrator.ErrNoContainer), wantStatus: 500,
			wantBody: detail("Failed to start tunnel: Workspace ws1 has no container/server"), wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: not running", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			syncStatus: fleet.StatusStopped, execFn: notRunning, wantStatus: 500,
			wantBody: detail("Failed to start tunnel: Workspace is not running (status: stopped)"), wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: server unavailable", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execErr(fmt.Errorf("%w: dial: refused", orchestrator.ErrServerUnavailable)), wantStatus: 500,
			wantBody: detail("Failed to start tunnel: Server not available"), wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: timed out", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
				return orchestrator.ExecResult{TimedOut: true}, nil
			}, wantStatus: 500, wantBody: detail("Failed to start tunnel: Command timed out"), wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: docker exec failed", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			execFn: execErr(errors.New("container ctr-1 is restarting")), wantStatus: 500,
			wantBody: detail("Failed to start tunnel: Command execution failed: internal error"), wantExec: dev(wantStart3000, sampleToken)},
		{name: "start: a NUL in the token", method: "POST", path: "/workspaces/ws1/tunnels/start", body: `{"token":"a\u0000b","port":3000}`,
			wantStatus: 500, wantBody: detail("Failed to start tunnel: token contains a NUL byte")},
		{name: "start: empty body", method: "POST", path: "/workspaces/ws1/tunnels/start", wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
		{name: "start: nothing given", method: "POST", path: "/workspaces/ws1/tunnels/start", body: `{}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["body","token"],"msg":"Field required","input":{}},
				{"type":"missing","loc":["body","port"],"msg":"Field required","input":{}}]}`},
		{name: "start: port 0 and ftp", method: "POST", path: "/workspaces/ws1/tunnels/start",
			body: `{"token":"t","port":0,"service_type":"ftp"}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"greater_than_equal","loc":["body","port"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}},
				{"type":"string_pattern_mismatch","loc":["body","service_type"],"msg":"String should match pattern '^(http|ssh)$'","input":"ftp","ctx":{"pattern":"^(http|ssh)$"}}]}`},
		{name: "start: port too large", method: "POST", path: "/workspaces/ws1/tunnels/start", body: `{"token":"t","port":65536}`,
			wantStatus: 422,
			wantBody:   `{"detail":[{"type":"less_than_equal","loc":["body","port"],"msg":"Input should be less than or equal to 65535","input":65536,"ctx":{"le":65535}}]}`},
		{name: "start: port not a number", method: "POST", path: "/workspaces/ws1/tunnels/start", body: `{"token":"t","port":"http"}`,
			wantStatus: 422,
			wantBody:   `{"detail":[{"type":"int_parsing","loc":["body","port"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"http"}]}`},
		{name: "start: token and service type not strings", method: "POST", path: "/workspaces/ws1/tunnels/start",
			body: `{"token":5,"port":3000,"service_type":null}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"string_type","loc":["body","token"],"msg":"Input should be a valid string","input":5},
				{"type":"string_type","loc":["body","service_type"],"msg":"Input should be a valid string","input":null}]}`},
		{name: "start: pattern is anchored", method: "POST", path: "/workspaces/ws1/tunnels/start",
			body: `{"token":"t","port":3000,"service_type":"https"}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"string_pattern_mismatch","loc":["body","service_type"],"msg":"String should match pattern '^(http|ssh)$'","input":"https","ctx":{"pattern":"^(http|ssh)$"}}]}`},
		{name: "start: someone else's workspace", method: "POST", path: "/workspaces/bobs/tunnels/start", body: startBody,
			wantStatus: 403, wantBody: detail("Not authorized to access this workspace")},
		{name: "start: a bad body beats the owner check", method: "POST", path: "/workspaces/bobs/tunnels/start", body: `{"token":"t"}`,
			wantStatus: 422, wantBody: `{"detail":[{"type":"missing","loc":["body","port"],"msg":"Field required","input":{"token":"t"}}]}`},
		{name: "start: unknown workspace", method: "POST", path: "/workspaces/nope/tunnels/start", body: startBody,
			wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "start: no user", method: "POST", path: "/workspaces/ws1/tunnels/start", body: startBody,
			header: map[string]string{headerUserID: ""}, wantStatus: 401, wantBody: detail("Missing user ID header")},

		// stop
		{name: "stop", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `{"port":3000}`, execFn: execResult(0, "", ""),
			wantStatus: 200, wantBody: `{"status":"stopped","pid":null,"error":null}`, wantExec: dev(wantStop3000, "")},
		{name: "stop: no container", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `{"port":3000}`,
			execFn: execErr(orchestrator.ErrNoContainer), wantStatus: 500,
			wantBody: detail("Failed to stop tunnel: Workspace ws1 has no container/server"), wantExec: dev(wantStop3000, "")},
		{name: "stop: not running", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `{"port":3000}`,
			syncStatus: fleet.StatusStopped, execFn: notRunning, wantStatus: 500,
			wantBody: detail("Failed to stop tunnel: Workspace is not running (status: stopped)"), wantExec: dev(wantStop3000, "")},
		{name: "stop: the command failed", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `{"port":3000}`,
			execFn: execResult(2, "", "bash: pgrep: command not found\n"), wantStatus: 500,
			wantBody: detail("Failed to stop tunnel: bash: pgrep: command not found"), wantExec: dev(wantStop3000, "")},
		{name: "stop: no port", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `{"token":"t"}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["body","port"],"msg":"Field required","input":{"token":"t"}}]}`},
		{name: "stop: port out of range", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `{"port":-1}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"greater_than_equal","loc":["body","port"],"msg":"Input should be greater than or equal to 1","input":-1,"ctx":{"ge":1}}]}`},
		{name: "stop: not an object", method: "POST", path: "/workspaces/ws1/tunnels/stop", body: `[3000]`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[3000]}]}`},
		{name: "stop: someone else's workspace", method: "POST", path: "/workspaces/bobs/tunnels/stop", body: `{"port":3000}`,
			wantStatus: 403, wantBody: detail("Not authorized to access this workspace")},

		// status
		{name: "status: two tunnels, tokens masked", method: "GET", path: "/workspaces/ws1/tunnels/status",
			execFn: execResult(0, statusLine(41, "cloudflared", "tunnel", "run", "--token", sampleToken, "--url", "http://localhost:3000")+
				statusLine(57, "cloudflared", "tunnel", "run", "--token", sampleToken), ""),
			wantStatus: 200, wantBody: `{"status":"running","processes":[
				{"pid":41,"cmd":"cloudflared tunnel run --token *** --url http://localhost:3000"},
				{"pid":57,"cmd":"cloudflared tunnel run --token ***"}]}`,
			wantExec: dev(wantStatus, "")},
		{name: "status: none", method: "GET", path: "/workspaces/ws1/tunnels/status", execFn: execResult(0, "", ""),
			wantStatus: 200, wantBody: `{"status":"stopped","processes":[]}`, wantExec: dev(wantStatus, "")},
		{name: "status: no container", method: "GET", path: "/workspaces/ws1/tunnels/status",
			execFn: execErr(orchestrator.ErrNoContainer), wantStatus: 200,
			wantBody: `{"status":"error","error":"No container/server"}`, wantExec: dev(wantStatus, "")},
		{name: "status: not running", method: "GET", path: "/workspaces/ws1/tunnels/status", syncStatus: fleet.StatusStopped,
			execFn: notRunning, wantStatus: 200,
			wantBody: `{"status":"error","error":"Workspace is not running (status: stopped)"}`, wantExec: dev(wantStatus, "")},
		{name: "status: pgrep failed", method: "GET", path: "/workspaces/ws1/tunnels/status",
			execFn: execResult(3, "", "pgrep: fatal error\n"), wantStatus: 200,
			wantBody: `{"status":"error","error":"pgrep: fatal error"}`, wantExec: dev(wantStatus, "")},
		{name: "status: HEAD", method: "HEAD", path: "/workspaces/ws1/tunnels/status", execFn: execResult(0, "", ""),
			wantStatus: 200, wantExec: dev(wantStatus, "")},
		{name: "status: someone else's workspace", method: "GET", path: "/workspaces/bobs/tunnels/status",
			wantStatus: 403, wantBody: detail("Not authorized to access this workspace")},
		{name: "status: wrong token", method: "GET", path: "/workspaces/ws1/tunnels/status",
			header: map[string]string{headerServiceToken: "nope"}, wantStatus: 401, wantBody: detail("Invalid service token")},
		{name: "status: wrong method", method: "POST", path: "/workspaces/ws1/tunnels/status",
			wantStatus: 405, wantBody: detail("Method Not Allowed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob := aliceWS()
			bob.ID, bob.UserID = "bobs", "bob"
			f := newFake(aliceWS(), bob)
			f.syncStatus, f.execFn = tt.syncStatus, tt.execFn
			rec := req{method: tt.method, path: tt.path, body: tt.body, header: tt.header}.send(newTestEcho(f, testToken))
			if tt.method == "HEAD" { // net/http drops the body; the recorder keeps it
				if rec.Code != tt.wantStatus {
					t.Errorf("HEAD: got %d, want %d", rec.Code, tt.wantStatus)
				}
			} else {
				checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			}
			var want []orchestrator.ExecRequest
			if tt.wantExec != nil {
				want = append(want, *tt.wantExec)
			}
			if diff := cmp.Diff(want, f.execs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("exec requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTunnelStartSyncsFirst: the exec sees the live status, as the other
// container routes do.
func TestTunnelStartSyncsFirst(t *testing.T) {
	f := newFake(aliceWS())
	f.execFn = execResult(0, "1\n", "")
	req{method: "POST", path: "/workspaces/ws1/tunnels/start", body: `{"token":"t","port":3000}`}.send(newTestEcho(f, testToken))
	if diff := cmp.Diff([]string{"Sync ws1", "Exec ws1"}, f.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestMaskToken(t *testing.T) {
	tests := []struct {
		name       string
		args, want []string
	}{
		{"http", []string{"cloudflared", "tunnel", "run", "--token", "eyJh==", "--url", "http://localhost:3000"},
			[]string{"cloudflared", "tunnel", "run", "--token", "***", "--url", "http://localhost:3000"}},
		{"ssh", []string{"cloudflared", "tunnel", "run", "--token", "eyJh=="}, []string{"cloudflared", "tunnel", "run", "--token", "***"}},
		{"equals form", []string{"cloudflared", "tunnel", "run", "--token=eyJh=="}, []string{"cloudflared", "tunnel", "run", "--token=***"}},
		{"single dash", []string{"cloudflared", "-token", "eyJh==", "tunnel", "run"}, []string{"cloudflared", "-token", "***", "tunnel", "run"}},
		{"single dash equals", []string{"cloudflared", "-token=a=b"}, []string{"cloudflared", "-token=***"}},
		{"a token with spaces is one argument", []string{"cloudflared", "--token", "a b c", "--url", "x"},
			[]string{"cloudflared", "--token", "***", "--url", "x"}},
		{"an empty token", []string{"cloudflared", "--token", "", "--url", "x"}, []string{"cloudflared", "--token", "***", "--url", "x"}},
		{"a token that looks like a flag is still the value", []string{"cloudflared", "--token", "--url", "x"},
			[]string{"cloudflared", "--token", "***", "x"}},
		{"--token last", []string{"cloudflared", "tunnel", "run", "--token"}, []string{"cloudflared", "tunnel", "run", "--token"}},
		{"no token", []string{"cloudflared", "tunnel", "--url", "http://localhost:8080"}, []string{"cloudflared", "tunnel", "--url", "http://localhost:8080"}},
		{"not a token flag", []string{"cloudflared", "--tokens", "x", "--token-file", "y"}, []string{"cloudflared", "--tokens", "x", "--token-file", "y"}},
		{"two tokens", []string{"cloudflared", "--token", "a", "tunnel", "run", "--token", "b"},
			[]string{"cloudflared", "--token", "***", "tunnel", "run", "--token", "***"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.args)
			if diff := cmp.Diff(tt.want, maskToken(tt.args)); diff != "" {
				t.Errorf("maskToken(%q) (-want +got):\n%s", tt.args, diff)
			}
			if !slices.Equal(in, tt.args) {
				t.Errorf("maskToken changed its argument: %q", tt.args)
			}
		})
	}
}

func TestParseTunnelProcesses(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []tunnelProcess
	}{
		{name: "empty", out: "", want: []tunnelProcess{}},
		{name: "two tunnels", out: statusLine(12, "cloudflared", "tunnel", "run", "--token", "T", "--url", "http://localhost:3000") +
			statusLine(13, "cloudflared", "tunnel", "run", "--token", "U"),
			want: []tunnelProcess{
				{PID: 12, Cmd: "cloudflared tunnel run --token *** --url http://localhost:3000"},
				{PID: 13, Cmd: "cloudflared tunnel run --token ***"},
			}},
		{name: "arguments with spaces and newlines", out: statusLine(7, "cloudflared", "tunnel", "run", "--token", "a b\nc"),
			want: []tunnelProcess{{PID: 7, Cmd: "cloudflared tunnel run --token ***"}}},
		{name: "an exiting process, junk and bad base64", out: "14 \nnot a pid line\n\n16 !!!\n" + statusLine(15, "cloudflared", "--version"),
			want: []tunnelProcess{{PID: 15, Cmd: "cloudflared --version"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseTunnelProcesses(tt.out)); diff != "" {
				t.Errorf("parseTunnelProcesses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTunnelCommandsParse checks that every command is valid bash for
// ports across the range and both types.
func TestTunnelCommandsParse(t *testing.T) {
	bash := lookBash(t)
	var cmds []string
	for _, port := range []int{1, 22, 3000, 65535} {
		cmds = append(cmds, startTunnelCommand(port, "http"), startTunnelCommand(port, "ssh"), stopTunnelCommand(port))
	}
	cmds = append(cmds, statusTunnelCommand, portsCommand)
	for _, c := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bash, "-n", "-c", c).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("bash -n: %v: %s\n%s", err, out, c)
		}
	}
	if got := startTunnelCommand(3000, "http"); strings.Contains(got, sampleToken) {
		t.Errorf("the start command holds the token: %s", got)
	}
}
