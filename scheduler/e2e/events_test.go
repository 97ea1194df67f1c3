package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// listStatus is the workspace's status as GET /workspaces lists it: the list
// is not synced from Docker, so it shows what the agents' event streams
// (and reconciliation) have told the scheduler.
func listStatus(t *testing.T, k caller, session, id string) (string, string) {
	t.Helper()
	var rows []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	k.do(t, http.MethodGet, "/workspaces?session_id="+session, nil).into(t, &rows)
	for _, r := range rows {
		if r.ID == id {
			return r.Status, ""
		}
	}
	return "", "not listed"
}

// A container that dies, is OOM-killed or is removed behind berth's back
// changes its workspace's status through the agent's event stream, without
// anyone asking for it.
func TestWorkspaceEvents(t *testing.T) {
	needCluster(t)
	k := composeAPI().as("events-user")
	tests := []struct {
		name   string
		inject func(host, name string) []string // inner docker command
		setup  func(t *testing.T, host, name string)
		want   string
	}{
		{"killed", func(host, name string) []string { return []string{"kill", name} }, nil, "stopped"},
		{"removed outside berth", func(host, name string) []string { return []string{"rm", "-f", name} }, nil, "error"},
		{"oom-killed", func(host, name string) []string { return []string{"kill", name} },
			func(t *testing.T, host, name string) {
				// A process blows the 64 MiB limit (Docker records the OOM), then the container dies.
				// runsc cannot change limits live (no `runsc update`): under
				// gVisor this fault cannot be set up this way.
				if rt := innerDocker(t, host, "inspect", "--format", "{{.HostConfig.Runtime}}", name); rt == "runsc" {
					t.Skip("the workspace runs under runsc, which cannot lower its memory limit live")
				}
				innerDocker(t, host, "update", "--memory", "64m", "--memory-swap", "64m", name)
				hostDocker(t, host, "exec", "-u", "root", name, "bash", "-c", "head -c 300m /dev/zero | tail > /dev/null")
			}, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			session := uniqueID("ev")
			ws := k.mustCreate(t, session, uniqueID("ev"), nil)
			name := "workspace-" + ws.ID
			if tt.setup != nil {
				tt.setup(t, ws.ServerID, name)
			}
			start := time.Now()
			hostDocker(t, ws.ServerID, tt.inject(ws.ServerID, name)...)
			waitFor(t, 10*time.Second, "status "+tt.want+" from the event stream", func() (bool, string) {
				st, why := listStatus(t, k, session, ws.ID)
				return st == tt.want, fmt.Sprintf("%s %s", st, why)
			})
			t.Logf("%s: status %s %s after the fault", tt.name, tt.want, time.Since(start).Round(time.Millisecond))
		})
	}
}

// hostDocker runs an inner docker command whose failure is expected (an
// OOM-killed exec exits non-zero); the status change is what is checked.
func hostDocker(t *testing.T, host string, args ...string) {
	t.Helper()
	_ = exec.Command("docker", append([]string{"exec", hostContainer(t, host), "docker"}, args...)...).Run()
}
