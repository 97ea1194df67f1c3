package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/wire"
)

// The cluster as docker-compose.yml publishes it on loopback.
var hosts = []struct{ id, addr string }{
	{"ws-local-1", "127.0.0.1:7441"},
	{"ws-local-2", "127.0.0.1:7442"},
}

const schedulerURL = "http://127.0.0.1:3003"

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func needCluster(t *testing.T) {
	t.Helper()
	if os.Getenv("BERTH_E2E") != "1" {
		t.Skip("end-to-end test: run `make test` (or set BERTH_E2E=1 with `make run` up)")
	}
}

// agents returns mTLS clients of the cluster's agents, holding the
// development scheduler certificate.
func agents(t *testing.T) map[string]*agentclient.Client {
	t.Helper()
	pki := filepath.Join(repoRoot(t), ".dev", "pki")
	d, err := agentclient.NewDialer(mtls.Files{Cert: filepath.Join(pki, "scheduler.crt"), Key: filepath.Join(pki, "scheduler.key"), CA: filepath.Join(pki, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*agentclient.Client{}
	for _, h := range hosts {
		out[h.id] = d.Client(h.id, h.addr)
	}
	return out
}

// hostContainer is the outer container id of a compose service.
func hostContainer(t *testing.T, service string) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.compose.project=berth",
		"--filter", "label=com.docker.compose.service="+service).Output()
	id := strings.TrimSpace(string(out))
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("no single running container for compose service %s (%v): %q", service, err, id)
	}
	return id
}

// innerDocker runs the docker CLI inside a DinD host, against its own dockerd.
func innerDocker(t *testing.T, host string, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", append([]string{"exec", hostContainer(t, host), "docker"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker exec %s docker %v: %v\n%s", host, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Each host reports its own identity and capacity, measured by its agent.
func TestHostsReportOwnCapacity(t *testing.T) {
	needCluster(t)
	ctx := ctxT(t, time.Minute)
	seenRoots := map[string]string{}
	for id, c := range agents(t) {
		capa, err := c.Capacity(ctx)
		if err != nil {
			t.Fatalf("%s capacity: %v", id, err)
		}
		if capa.ServerID != id {
			t.Errorf("%s reports server id %q", id, capa.ServerID)
		}
		if capa.CPUCores != runtime.NumCPU() || capa.MemoryTotalMB <= 0 || capa.DiskTotalGB <= 0 || capa.Architecture != runtime.GOARCH {
			t.Errorf("%s capacity = %+v, want %d cores, memory, disk and %s", id, capa, runtime.NumCPU(), runtime.GOARCH)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatalf("%s info: %v", id, err)
		}
		// The inner daemon, not the outer one: its image count is what the
		// host's own dockerd says.
		if got := innerDocker(t, id, "info", "--format", "{{.Images}}"); got != fmt.Sprint(info.Images) {
			t.Errorf("%s agent reports %d images, its dockerd %s", id, info.Images, got)
		}
		seenRoots[id] = innerDocker(t, id, "info", "--format", "{{.ID}}")
	}
	if seenRoots["ws-local-1"] == seenRoots["ws-local-2"] {
		t.Errorf("both hosts report the same dockerd id %q: want two daemons", seenRoots["ws-local-1"])
	}
}

// A container created through each agent runs in that host's own dockerd,
// not in the other host's and not in the outer one.
func TestContainerRunsInOwnHostDockerd(t *testing.T) {
	needCluster(t)
	ctx := ctxT(t, 2*time.Minute)
	cs := agents(t)
	for _, h := range hosts {
		t.Run(h.id, func(t *testing.T) {
			name := fmt.Sprintf("berth-e2e-%d", time.Now().UnixNano())
			ctr, err := cs[h.id].Create(ctx, wire.CreateContainerRequest{Name: name, Image: "berth/workspace:dev", Start: true,
				Resources: wire.Resources{CPU: 0.5, MemoryMB: 128}})
			if err != nil {
				t.Fatalf("create on %s: %v", h.id, err)
			}
			defer cs[h.id].Remove(context.Background(), ctr.ID, true)
			if got := innerDocker(t, h.id, "inspect", "--format", "{{.State.Running}} {{.HostConfig.Memory}}", name); got != "true 134217728" {
				t.Errorf("in %s's dockerd: %q, want running with a 128 MiB limit", h.id, got)
			}
			for _, other := range hosts {
				if other.id != h.id && strings.Contains(innerDocker(t, other.id, "ps", "-a", "--format", "{{.Names}}"), name) {
					t.Errorf("%s also appears in %s's dockerd", name, other.id)
				}
			}
			if out, _ := exec.Command("docker", "ps", "-a", "--format", "{{.Names}}").Output(); strings.Contains(string(out), name) {
				t.Errorf("%s appears in the outer dockerd", name)
			}
			res, err := cs[h.id].Exec(ctx, ctr.ID, wire.ExecRequest{Cmd: []string{"hostname"}})
			if err != nil || res.ExitCode != 0 {
				t.Errorf("exec: %v %+v", err, res)
			}
		})
	}
}

// The scheduler sees both hosts through gossip, with their capacity.
func TestSchedulerGossipView(t *testing.T) {
	needCluster(t)
	var members []gossip.Member
	deadline := time.Now().Add(30 * time.Second)
	for {
		members = getMembers(t)
		alive := 0
		for _, m := range members {
			if strings.HasPrefix(m.Name, "ws-local-") && m.State == gossip.StateAlive && m.Meta.CPUMilli > 0 {
				alive++
			}
		}
		if alive == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduler does not see both hosts alive with capacity: %+v", members)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, m := range members {
		if strings.HasPrefix(m.Name, "ws-local-") {
			if m.Meta.ServerID != m.Name || m.Meta.AgentAddr != m.Name+":7443" || m.Meta.Region != "local" || m.Meta.MemTotalMB == 0 {
				t.Errorf("member %s meta = %+v", m.Name, m.Meta)
			}
		}
	}
	// The CLI prints the same view as a table.
	cmd := exec.Command(filepath.Join(repoRoot(t), "bin", "scheduler"), "members")
	cmd.Env = append(os.Environ(), "BERTH_URL="+schedulerURL, "BERTH_ADMIN_TOKEN="+adminToken())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ws-local-1") || !strings.Contains(string(out), "ws-local-2") {
		t.Errorf("scheduler members: %v\n%s", err, out)
	}
}

func adminToken() string {
	if t := os.Getenv("BERTH_ADMIN_TOKEN"); t != "" {
		return t
	}
	return "dev-admin-token"
}

func getMembers(t *testing.T) []gossip.Member {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, schedulerURL+"/admin/members", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /admin/members: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/members: %d %s", resp.StatusCode, body)
	}
	var ms []gossip.Member
	if err := json.Unmarshal(body, &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}
