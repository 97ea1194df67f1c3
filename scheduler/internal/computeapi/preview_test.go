package computeapi

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
)

// ssWorkspace is `ss -Htlnp` as dev in berth/workspace:dev, verbatim (with
// the trailing blanks): stand-in cloudflareds (metrics on 127.0.0.1:20241,
// on :3000 and 0.0.0.0:5000, which Go makes dual-stack `*`), one run by
// root (no process for dev), a copy named "my server,x", and a forked
// python server with separate IPv4 and IPv6-only sockets on 8080.
const ssWorkspace = `LISTEN 0      4096   127.0.0.1:20241 0.0.0.0:* users:(("cloudflared",pid=8,fd=5))                     
LISTEN 0      4096   127.0.0.1:7000  0.0.0.0:* users:(("my server,x",pid=72,fd=5))                    
LISTEN 0      128      0.0.0.0:8080  0.0.0.0:* users:(("python3",pid=91,fd=4),("python3",pid=84,fd=4))
LISTEN 0      4096           *:3000        *:* users:(("cloudflared",pid=42,fd=5))                    
LISTEN 0      4096           *:6000        *:*                                                        
LISTEN 0      4096           *:5000        *:* users:(("cloudflared",pid=19,fd=5))                    
LISTEN 0      128         [::]:8080     [::]:* users:(("python3",pid=91,fd=3),("python3",pid=84,fd=3))
`

// ssWithHeader is `ss -tlnp` (with its header) from the same container.
const ssWithHeader = `State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess                                                 
LISTEN 0      4096       127.0.0.1:20241      0.0.0.0:*    users:(("cloudflared",pid=8,fd=5))                     
LISTEN 0      4096               *:6000             *:*                                                           
`

func TestParseListeners(t *testing.T) {
	p := newPortInfo
	tests := []struct {
		name string
		out  string
		want []portInfo
	}{
		{name: "workspace sample", out: ssWorkspace, want: []portInfo{
			p(3000, "cloudflared"), p(5000, "cloudflared"), p(6000, "unknown"), p(7000, "my server,x"),
			p(8080, "python3"), p(20241, "cloudflared"),
		}},
		{name: "with the header line", out: ssWithHeader, want: []portInfo{p(6000, "unknown"), p(20241, "cloudflared")}},
		{name: "IPv6, scoped and mapped addresses", out: `LISTEN 0 511 [::]:3000 [::]:* users:(("node",pid=7,fd=20))
LISTEN 0 511 [::1]:3001 [::]:* users:(("vite",pid=9,fd=21))
LISTEN 0 128 [fe80::1%eth0]:8443 [::]:*
LISTEN 0 128 [::ffff:127.0.0.1]:9000 [::]:* users:(("php-fpm",pid=3,fd=6))
LISTEN 0 4096 127.0.0.53%lo:5353 0.0.0.0:*
`, want: []portInfo{p(3000, "node"), p(3001, "vite"), p(5353, "unknown"), p(8443, "unknown"), p(9000, "php-fpm")}},
		{name: "ports up to 1024 are left out", out: `LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))
LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=2,fd=6))
LISTEN 0 511 0.0.0.0:1024 0.0.0.0:*
LISTEN 0 511 0.0.0.0:1025 0.0.0.0:* users:(("nginx",pid=2,fd=7))
`, want: []portInfo{p(1025, "nginx")}},
		{name: "one port: a named listener wins over an unnamed one", out: `LISTEN 0 511 0.0.0.0:8000 0.0.0.0:*
LISTEN 0 511 [::]:8000 [::]:* users:(("uvicorn",pid=5,fd=3))
LISTEN 0 511 *:8000 *:* users:(("gunicorn",pid=6,fd=3))
`, want: []portInfo{p(8000, "uvicorn")}},
		{name: "several processes: the first names the port", out: `LISTEN 0 511 *:4000 *:* users:(("node",pid=11,fd=3),("npm",pid=10,fd=3))
`, want: []portInfo{p(4000, "node")}},
		{name: "a Netid column (ss -a)", out: `tcp LISTEN 0 511 0.0.0.0:5173 0.0.0.0:* users:(("node",pid=4,fd=22))
`, want: []portInfo{p(5173, "node")}},
		{name: "no State column", out: `0 511 0.0.0.0:5174 0.0.0.0:*
`, want: []portInfo{p(5174, "unknown")}},
		{name: "an unreadable process column", out: `LISTEN 0 511 *:4001 *:* users:((node,pid=1))
LISTEN 0 511 *:4002 *:* users:(("",pid=1,fd=3))
LISTEN 0 511 *:4003 *:* users:(("half
`, want: []portInfo{p(4001, "unknown"), p(4002, "unknown"), p(4003, "unknown")}},
		{name: "junk", out: "\n   \nss: command not found\nLISTEN 0 511 *:http *:*\nLISTEN 0 511 noport *:*\nLISTEN 0 511 *:70000 *:*\n",
			want: []portInfo{}},
		{name: "empty", out: "", want: []portInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseListeners(tt.out)); diff != "" {
				t.Errorf("parseListeners (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewPortInfo(t *testing.T) {
	tests := []struct {
		port int
		name string
		want portInfo
	}{
		{3000, "node", portInfo{Port: 3000, ProcessName: "node", State: "LISTEN", Protocol: "http", Label: "node"}},
		{8080, "unknown", portInfo{Port: 8080, ProcessName: "unknown", State: "LISTEN", Protocol: "http", Label: "unknown"}},
		{5000, "", portInfo{Port: 5000, ProcessName: "", State: "LISTEN", Protocol: "http", Label: "Port 5000"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, newPortInfo(tt.port, tt.name)); diff != "" {
			t.Errorf("newPortInfo(%d, %q) (-want +got):\n%s", tt.port, tt.name, diff)
		}
	}
}

func TestPreviewRoutes(t *testing.T) {
	listing := execResult(0, "LISTEN 0 511 *:3000 *:* users:((\"node\",pid=7,fd=20))\nLISTEN 0 511 [::]:3000 [::]:* users:((\"node\",pid=7,fd=21))\n"+
		"LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 4096 127.0.0.1:20241 0.0.0.0:*\n", "")
	portsJSON := `[{"port":3000,"process_name":"node","state":"LISTEN","protocol":"http","label":"node"},
		{"port":20241,"process_name":"unknown","state":"LISTEN","protocol":"http","label":"unknown"}]`
	wantExec := &orchestrator.ExecRequest{Command: "ss -Htlnp", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}
	noUser := map[string]string{headerUserID: ""}
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		status     fleet.Status // the stored status of ws1
		execFn     func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)
		wantStatus int
		wantBody   string
		wantExec   *orchestrator.ExecRequest
	}{
		{name: "ports", path: "/preview/ws1/ports", execFn: listing, wantStatus: 200, wantBody: portsJSON, wantExec: wantExec},
		{name: "ports without X-User-ID", path: "/preview/ws1/ports", header: noUser, execFn: listing,
			wantStatus: 200, wantBody: portsJSON, wantExec: wantExec},
		{name: "ports of someone else's workspace: no ownership", path: "/preview/bobs/ports", execFn: listing,
			wantStatus: 200, wantBody: portsJSON, wantExec: wantExec},
		{name: "ports: none", path: "/preview/ws1/ports", execFn: execResult(0, "", ""), wantStatus: 200, wantBody: `[]`, wantExec: wantExec},
		{name: "ports: not running", path: "/preview/ws1/ports", status: fleet.StatusStopped,
			execFn:     execErr(fmt.Errorf("%w (status: stopped)", orchestrator.ErrNotRunning)),
			wantStatus: 200, wantBody: `[]`, wantExec: wantExec},
		{name: "ports: no container", path: "/preview/ws1/ports", execFn: execErr(orchestrator.ErrNoContainer),
			wantStatus: 200, wantBody: `[]`, wantExec: wantExec},
		{name: "ports: the exec failed", path: "/preview/ws1/ports", execFn: execErr(errors.New("agent: 500")),
			wantStatus: 200, wantBody: `[]`, wantExec: wantExec},
		{name: "ports: ss failed", path: "/preview/ws1/ports", execFn: execResult(127, "", "bash: ss: command not found\n"),
			wantStatus: 200, wantBody: `[]`, wantExec: wantExec},
		{name: "ports: timed out", path: "/preview/ws1/ports", execFn: func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{TimedOut: true}, nil
		}, wantStatus: 200, wantBody: `[]`, wantExec: wantExec},
		{name: "ports: unknown workspace", path: "/preview/nope/ports", wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "ports: an id the workspace routes refuse is just not found", path: "/preview/a.b/ports",
			wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "ports: wrong token", path: "/preview/ws1/ports", header: map[string]string{headerServiceToken: "nope"},
			wantStatus: 401, wantBody: detail("Invalid service token")},
		{name: "ports: no token", path: "/preview/ws1/ports", header: map[string]string{headerServiceToken: ""},
			wantStatus: 401, wantBody: detail("Missing service token")},
		{name: "ports: bearer token", path: "/preview/ws1/ports",
			header: map[string]string{headerServiceToken: "", "Authorization": "Bearer " + testToken},
			execFn: listing, wantStatus: 200, wantBody: portsJSON, wantExec: wantExec},
		{name: "ports: wrong method", method: "POST", path: "/preview/ws1/ports", wantStatus: 405, wantBody: detail("Method Not Allowed")},

		{name: "index", path: "/preview/ws1", header: noUser, execFn: listing, wantStatus: 200,
			wantBody: `{"workspace_id":"ws1","status":"running","active_ports":` + portsJSON +
				`,"preview_base_url":"/preview/ws1/proxy","container_id":null}`,
			wantExec: wantExec},
		{name: "index: the stored status, no sync", path: "/preview/ws1", status: fleet.StatusStopped,
			execFn:     execErr(fmt.Errorf("%w (status: stopped)", orchestrator.ErrNotRunning)),
			wantStatus: 200, wantBody: `{"workspace_id":"ws1","status":"stopped","active_ports":[],"preview_base_url":"/preview/ws1/proxy","container_id":null}`,
			wantExec: wantExec},
		{name: "index: unknown workspace", path: "/preview/nope", wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "index: wrong token", path: "/preview/ws1", header: map[string]string{headerServiceToken: "nope"},
			wantStatus: 401, wantBody: detail("Invalid service token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, bob := aliceWS(), aliceWS()
			bob.ID, bob.UserID = "bobs", "bob"
			if tt.status != "" {
				ws.Status = tt.status
			}
			f := newFake(ws, bob)
			f.execFn = tt.execFn
			f.syncStatus = fleet.StatusError // a sync would show
			method := tt.method
			if method == "" {
				method = "GET"
			}
			rec := req{method: method, path: tt.path, header: tt.header}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			var want []orchestrator.ExecRequest
			if tt.wantExec != nil {
				want = append(want, *tt.wantExec)
			}
			if diff := cmp.Diff(want, f.execs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("exec requests (-want +got):\n%s", diff)
			}
			for _, call := range f.calls {
				if call == "Sync ws1" || call == "Sync bobs" {
					t.Errorf("calls: got %v, want no sync", f.calls)
				}
			}
		})
	}
}
