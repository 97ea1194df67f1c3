package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// The workspace sandbox on the real hosts (README "Workspace sandbox"):
// what a workspace container is made with, what works and does not from
// inside it, and that one workspace cannot hurt another on the same host.

// sandboxCaps is the agent's documented capability set
// (agent/internal/docker.MinimalCaps), restated here so the test can fail.
var sandboxCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"}

// runscOK reports whether host's setup registered runsc (its probe's
// outcome, /run/berth/runsc-state).
func runscOK(t *testing.T, host string) bool {
	t.Helper()
	out, err := exec.Command("docker", "exec", hostContainer(t, host), "cat", "/run/berth/runsc-state").CombinedOutput()
	if err != nil {
		t.Fatalf("read %s's runsc state: %v\n%s", host, err, out)
	}
	t.Logf("%s runsc: %s", host, strings.TrimSpace(string(out)))
	return strings.HasPrefix(string(out), "ok")
}

// inHostSh runs a shell script in host's container (as root, beside the agent).
func inHostSh(t *testing.T, host, script string) string {
	t.Helper()
	out, err := exec.Command("docker", "exec", hostContainer(t, host), "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", host, script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// hostConfig is the part of `docker inspect` the sandbox decides.
type hostConfig struct {
	Runtime     string
	CapDrop     []string
	CapAdd      []string
	SecurityOpt []string
	PidsLimit   int64
	NetworkMode string
	Privileged  bool
	Ulimits     []struct {
		Name string
		Soft int64
		Hard int64
	}
}

func inspectHostConfig(t *testing.T, host, ctr string) hostConfig {
	t.Helper()
	var hc hostConfig
	if err := json.Unmarshal([]byte(innerDocker(t, host, "inspect", "--format", "{{json .HostConfig}}", ctr)), &hc); err != nil {
		t.Fatal(err)
	}
	return hc
}

// A workspace made through the scheduler: capabilities, no-new-privileges,
// PIDs limit and ulimits of its tier, runtime, network, and from inside: no
// effective capabilities, no sudo.
func TestSandboxContainer(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("e2e-user"))
	ws := k.mustCreate(t, uniqueID("e2e-sess"), uniqueID("e2e-sbx"), nil)
	hc := inspectHostConfig(t, ws.ServerID, ws.ContainerID)
	limits := tiers.Builtin().Resolve("starter").ProcessLimits()

	if hc.Privileged || !slices.Equal(hc.CapDrop, []string{"ALL"}) {
		t.Errorf("privileged %v, cap_drop %v: want false and [ALL]", hc.Privileged, hc.CapDrop)
	}
	var got []string // Docker writes them CAP_X
	for _, c := range hc.CapAdd {
		got = append(got, strings.TrimPrefix(c, "CAP_"))
	}
	sort.Strings(got)
	if !slices.Equal(got, sandboxCaps) {
		t.Errorf("cap_add %v, want the documented %v", got, sandboxCaps)
	}
	if !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
		t.Errorf("security_opt %v: want no-new-privileges", hc.SecurityOpt)
	}
	if hc.NetworkMode != "berth-workspaces" {
		t.Errorf("network %q, want berth-workspaces", hc.NetworkMode)
	}
	ulimits := map[string]int64{}
	for _, u := range hc.Ulimits {
		ulimits[u.Name] = u.Hard
	}
	if ulimits["nofile"] <= 0 || ulimits["nofile"] > limits.OpenFiles {
		t.Errorf("nofile %d: want the tier's %d, or the host's lower hard limit", ulimits["nofile"], limits.OpenFiles)
	}
	if runscOK(t, ws.ServerID) {
		if hc.Runtime != "runsc" || ulimits["nproc"] != limits.Processes || hc.PidsLimit <= limits.Processes {
			t.Errorf("runsc host: runtime %q, nproc %d, pids %d: want runsc, nproc %d, a PIDs safety net above it",
				hc.Runtime, ulimits["nproc"], hc.PidsLimit, limits.Processes)
		}
	} else if hc.PidsLimit != limits.Processes {
		t.Errorf("runc host: pids limit %d, want %d", hc.PidsLimit, limits.Processes)
	}
	if icc := innerDocker(t, ws.ServerID, "network", "inspect", "--format",
		`{{index .Options "com.docker.network.bridge.enable_icc"}}`, "berth-workspaces"); icc != "false" {
		t.Errorf("berth-workspaces enable_icc = %q, want false", icc)
	}

	res := k.exec(t, ws.ID, map[string]any{"command": "grep CapEff /proc/self/status; command -v sudo || echo no-sudo; ulimit -u"})
	if !strings.Contains(res.Stdout, "CapEff:\t0000000000000000") || !strings.Contains(res.Stdout, "no-sudo") {
		t.Errorf("inside: %q, want no effective capabilities and no sudo", res.Stdout)
	}
}

// sandboxPair makes n containers on one host through its agent, as the
// scheduler would for a starter workspace with a 1 GB home; they are
// removed, with their data, when the test ends. runtime "runc" asks for
// runc with the exception (a host where runsc is not available); "" is the
// agent's choice.
func sandboxPair(t *testing.T, host string, n int, runtime string) (*agentclient.Client, []wire.Container) {
	t.Helper()
	c := agents(t)[host]
	var out []wire.Container
	for i := range n {
		dir := uniqueID("e2e-sbx")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		req := wire.CreateContainerRequest{
			Name: "berth-" + dir, Image: "berth/workspace:dev", Start: true, Hostname: fmt.Sprintf("sbx%d", i),
			Resources: wire.Resources{CPU: 1, MemoryMB: 512},
			Limits:    tiers.Builtin().Resolve("starter").ProcessLimits(),
			Mounts:    []wire.Mount{{Source: dir + "/home", Target: "/home/dev", Fresh: true, QuotaGB: 1}},
			Runtime:   runtime,
		}
		if runtime == "runc" {
			req.SandboxExceptions = []string{wire.ExceptRunc}
		}
		ctr, err := c.Create(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("create on %s: %v", host, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.Remove(ctx, ctr.ID, true); err != nil {
				t.Errorf("cleanup: remove %s: %v", ctr.Name, err)
			}
			if err := c.RemoveData(ctx, dir); err != nil {
				t.Errorf("cleanup: remove data %s: %v", dir, err)
			}
		})
		t.Logf("%s: sandbox %+v", ctr.Name, *ctr.Sandbox)
		out = append(out, ctr)
	}
	return c, out
}

// agentExec runs a shell command as dev through the agent.
func agentExec(ctx context.Context, c *agentclient.Client, id, script string) (wire.ExecResult, error) {
	return c.Exec(ctx, id, wire.ExecRequest{Cmd: []string{"bash", "-c", script}, User: "dev", TimeoutSeconds: 120})
}

// The home: setuid files and device nodes planted from the host have no
// effect inside; with quotas, writing past the size fails inside with
// ENOSPC.
func TestSandboxHome(t *testing.T) {
	needCluster(t)
	host := hosts[0].id
	c, ctrs := sandboxPair(t, host, 1, "")
	ctr := ctrs[0]
	ctx := ctxT(t, 3*time.Minute)
	home := innerDocker(t, host, "inspect", "--format", `{{range .Mounts}}{{if eq .Destination "/home/dev"}}{{.Source}}{{end}}{{end}}`, ctr.ID)
	inHostSh(t, host, fmt.Sprintf("cp /usr/bin/id %[1]s/suid-id && chown 0:0 %[1]s/suid-id && chmod 4755 %[1]s/suid-id && "+
		"mknod %[1]s/zero c 1 5 && chmod 666 %[1]s/zero", home))

	res, err := agentExec(ctx, c, ctr.ID, "~/suid-id -u")
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "1000" {
		t.Errorf("setuid-root id from the home: %q %q %v, want uid 1000 (setuid without effect)", res.Stdout, res.Stderr, err)
	}
	res, err = agentExec(ctx, c, ctr.ID, "head -c 4 ~/zero | wc -c")
	if err != nil || strings.TrimSpace(string(res.Stdout)) == "4" {
		t.Errorf("device node from the home: read %q (stderr %q, %v), want it refused", res.Stdout, res.Stderr, err)
	}
	t.Logf("device node read refused: %s", strings.TrimSpace(string(res.Stderr)))

	if ctr.Sandbox == nil || !strings.HasPrefix(ctr.Sandbox.DiskQuota, "1 GB") {
		t.Skipf("no disk quota on %s (%+v): storage_gb is not enforced there", host, ctr.Sandbox)
	}
	start := time.Now()
	res, err = agentExec(ctx, c, ctr.ID, "dd if=/dev/zero of=~/fill bs=1M count=1200 2>&1; echo exit=$?; df -m ~ | tail -1")
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	if !strings.Contains(out, "No space left on device") || strings.Contains(out, "exit=0") {
		t.Errorf("writing 1200 MiB into a 1 GB home: %q, want ENOSPC", out)
	}
	t.Logf("1200 MiB into a 1 GB home: ENOSPC after %v\n%s", time.Since(start).Round(time.Millisecond), out)
	res, err = agentExec(ctx, c, ctr.ID, "rm ~/fill && echo ok > ~/after && cat ~/after")
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "ok" {
		t.Errorf("after freeing the space: %q %q %v, want writes to work again", res.Stdout, res.Stderr, err)
	}
}

// Two workspaces on one host: one cannot reach the other's ports, while
// the host (the agent's preview proxy) can.
func TestSandboxNoCrossTraffic(t *testing.T) {
	needCluster(t)
	host := hosts[0].id
	c, ctrs := sandboxPair(t, host, 2, "")
	a, b := ctrs[0], ctrs[1]
	ctx := ctxT(t, 2*time.Minute)
	if _, err := agentExec(ctx, c, a.ID, "cd /tmp && setsid nohup python3 -m http.server 3000 >/dev/null 2>&1 </dev/null &"); err != nil {
		t.Fatal(err)
	}
	probe := fmt.Sprintf("timeout 5 bash -c 'exec 3<>/dev/tcp/%s/3000' && echo open || echo closed", a.IPAddress)
	waitFor(t, 30*time.Second, "the server in A answers the host", func() (bool, string) {
		out, _ := exec.Command("docker", "exec", hostContainer(t, host), "bash", "-c", probe).CombinedOutput()
		return strings.TrimSpace(string(out)) == "open", string(out)
	})
	res, err := agentExec(ctx, c, b.ID, probe)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "closed" {
		t.Errorf("B connecting to A:3000 (%s): %q %v, want closed", a.IPAddress, res.Stdout, err)
	}
}

// A fork bomb in one workspace leaves another on the same host responsive:
// its exec round trip is measured before and during (README figure), and
// every exec during the bomb must succeed within a generous deadline.
// Under runsc (where the host has it) and under runc (the fallback).
func TestSandboxForkBomb(t *testing.T) {
	needCluster(t)
	for _, runtime := range []string{"runsc", "runc"} {
		t.Run(runtime, func(t *testing.T) {
			if runtime == "runsc" && !runscOK(t, hosts[0].id) {
				t.Skip("runsc is not available on " + hosts[0].id)
			}
			forkBomb(t, runtime)
		})
	}
}

func forkBomb(t *testing.T, runtime string) {
	host := hosts[0].id
	c, ctrs := sandboxPair(t, host, 2, runtime)
	bomb, victim := ctrs[0], ctrs[1]
	ctx := ctxT(t, 5*time.Minute)
	roundTrips := func(label string) time.Duration {
		var d []time.Duration
		for range 10 {
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			start := time.Now()
			res, err := agentExec(ectx, c, victim.ID, "true")
			cancel()
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("%s: exec in the other workspace: %v %+v", label, err, res)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		t.Logf("exec round trip in the other workspace, %s: median %v, max %v", label, d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
		return d[len(d)/2]
	}
	before := roundTrips("before")
	if _, err := agentExec(ctx, c, bomb.ID, `setsid nohup bash -c ':(){ :|:& };:' >/dev/null 2>&1 </dev/null &`); err != nil {
		t.Fatal(err)
	}
	limits := tiers.Builtin().Resolve("starter").ProcessLimits()
	// The bomb has filled its workspace when the host sees it hold at least
	// half its task limit in PIDs.
	waitFor(t, time.Minute, "the fork bomb fills its workspace", func() (bool, string) {
		out, err := exec.Command("docker", "exec", hostContainer(t, host), "docker", "stats", "--no-stream", "--format", "{{.PIDs}}", bomb.ID).Output()
		var n int64
		_, _ = fmt.Sscan(strings.TrimSpace(string(out)), &n)
		return err == nil && n >= limits.Processes/2, fmt.Sprintf("%d PIDs (%v)", n, err)
	})
	during := roundTrips("during the fork bomb")
	t.Logf("fork bomb: exec round trip during/before = %.2fx", float64(during)/float64(before))
	state := innerDocker(t, host, "inspect", "--format", "{{.State.Status}}", bomb.ID)
	t.Logf("the bombed workspace is %s; host PIDs of it: %s", state,
		innerDocker(t, host, "stats", "--no-stream", "--format", "{{.PIDs}}", bomb.ID))
}
