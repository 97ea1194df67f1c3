package e2e

// Side by side with Docker Swarm (issue 13, goal 5), for `make bench`
// (scripts/bench.sh runs it with BERTH_E2E=1 BERTH_BENCH=1). In one run on
// this machine, berth on the compose cluster against a two-node Swarm the
// test makes for itself, both running the same workspace image
// (berth/workspace:dev) with a starter workspace's limits (tiers: 2 vCPU,
// 4096 MiB, 1024 processes, 65536 open files capped at the engine's hard
// limit as berth's agent caps them). It prints Go-benchmark-style lines
// (benchLine: "BenchmarkStreams/swarm/<name> <n> <value> <unit>") and asserts
// only that every workspace and service runs, and every fault is detected,
// within a deadline; no figure is asserted.
//
// The Swarm is two throwaway DinD containers from berth/host:dev (their
// dockerd only, no agent), on a bridge network of their own, each started as
// the compose hosts are (their capabilities, security options and cgroup
// mount; inner containers nested under the node's cgroup): a manager and a
// worker, both running tasks. It is not the machine's own engine: a
// `docker swarm leave` there disconnects every container from every
// attachable network, and docker-compose 1.29 makes the cluster's network
// berth_berth attachable, so leaving cut all three cluster members off their
// network and their published ports (seen on the first run of this test:
// "Failed to remove swarm network berth_berth on cluster leave"). Two DinD
// nodes are also the same kind of host as berth's two (same dockerd, overlay2
// on a volume, nested cgroups, the same two cores).
//
//   - create -> running, one at a time and 50 at once. berth: POST /workspaces
//     on a scheduler built from the working tree (startScheduler) placing on
//     the compose cluster's two hosts, until its 201 says running; once with
//     the hosts' default runtime (runsc where the host has it) and once with
//     runc (COMPUTE_DOCKER_RUNTIME=runc and the runc sandbox exception), the
//     runtime Swarm uses, so the orchestrators can be compared apart from
//     gVisor. Swarm: POST /services/create on the manager's engine API (what
//     `docker service create --detach --no-resolve-image` sends; the test
//     reaches the node's API socket through a bind mount, no TCP port), one
//     replica, until the task list shows its task running. 50 at once is 50
//     services, not one service of 50 replicas: a workspace is its own
//     object, created by its own request with its own name and life
//     (stopped, restarted, deleted alone), which is a service; the replicas
//     of one service are interchangeable copies made by one request. The
//     series alternate within each round, their order rotating.
//   - host failure detection: `docker kill` (and `docker pause`, which leaves
//     no connection reset behind: a host that froze or lost its network) of
//     the DinD host ws-local-2, until the compose scheduler reports it
//     unreachable (the health in its /metrics, as the fault tests read it),
//     against the Swarm worker killed or paused the same way, until the
//     manager lists it down. Both with their default timings.
//
// Everything the test makes on the machine's engine (the two nodes with
// their volumes, the network) is removed in cleanups, failure or not; killed
// or paused berth hosts are started again and waited for, as the fault tests
// do.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

const (
	// swarmLabel marks everything the test makes, with runStamp as its
	// value: the nodes and network on the machine's engine, the services and
	// their containers in the nodes.
	swarmLabel = "berth.bench.swarm"
	// swarmPoll is how often the test polls Swarm's tasks and nodes and the
	// scheduler's health: the resolution of the Swarm and detection figures
	// (berth's create answers synchronously).
	swarmPoll = 25 * time.Millisecond
	// swarmVictim is the berth host the detection rounds kill or pause.
	swarmVictim = "ws-local-2"
)

func TestBenchSwarm(t *testing.T) {
	needBench(t)
	sw := startSwarm(t)
	starterTier := tiers.Builtin().Resolve("starter")
	t.Logf("starter tier: %g vCPU, %d MiB, limits %+v (Swarm's containers: %+v)", starterTier.VCPU, starterTier.MemoryMB,
		starterTier.ProcessLimits(), sw.limits(t, starterTier))

	t.Run("create", func(t *testing.T) {
		batch := envInt("BERTH_BENCH_SWARM_BATCH", 50)
		// Room for a whole batch of starters on either host: the
		// comparison is of creating, not of refusing. Memory is not
		// overcommitted in berth, so it is seeded rather than measured
		// (Swarm is given limits, not reservations, for the same reason).
		servers := swarmBenchServers(t, int64(batch))
		room := seed{CPU: 1, MemoryMB: 1, DiskGB: 1, Region: "local"} // replaced by servers
		seeds := map[string]seed{hosts[0].id: room, hosts[1].id: room}
		runtimeOf := "default"
		if runscOK(t, hosts[0].id) && runscOK(t, hosts[1].id) {
			runtimeOf = "runsc"
		}
		series := []swarmSeries{
			{name: "berth", note: "berth, the hosts' default runtime (" + runtimeOf + ")",
				create: berthCreator(startScheduler(t, "spread", seeds, servers))},
			{name: "berth_runc", note: "berth, runc",
				create: berthCreator(startScheduler(t, "spread", seeds, servers,
					"COMPUTE_DOCKER_RUNTIME=runc", "BERTH_SANDBOX_EXCEPTIONS=runc"))},
			{name: "swarm", note: "Swarm, one replicated service per workspace",
				create: sw.creator(starterTier)},
		}

		one := map[string][]time.Duration{}
		for i := range envInt("BERTH_BENCH_SWARM_ROUNDS", 10) {
			for j := range series {
				s := series[(i+j)%len(series)]
				d := s.create(t, 1)
				one[s.name] = append(one[s.name], d...)
				t.Logf("create_one round %d %s: %s", i+1, s.name, d[0].Round(time.Millisecond))
			}
		}
		many := map[string][]time.Duration{}
		all := map[string][]time.Duration{}
		for i := range envInt("BERTH_BENCH_SWARM_BATCH_ROUNDS", 3) {
			for j := range series {
				s := series[(i+j)%len(series)]
				d := s.create(t, batch)
				many[s.name] = append(many[s.name], d...)
				all[s.name] = append(all[s.name], slices.Max(d))
				t.Logf("create_%d round %d %s: p50 %s, all running after %s", batch, i+1, s.name,
					swarmPct(d, 0.5).Round(time.Millisecond), slices.Max(d).Round(time.Millisecond))
			}
		}
		for _, s := range series {
			t.Logf("%s: %s", s.name, s.note)
			swarmLines("create_one/"+s.name, one[s.name])
			swarmLines(fmt.Sprintf("create_%d/%s", batch, s.name), many[s.name])
			benchLine(fmt.Sprintf("swarm/create_%d/%s/all_p50", batch, s.name), len(all[s.name]),
				float64(swarmPct(all[s.name], 0.5).Nanoseconds()), "ns/op")
		}
	})

	t.Run("detect", func(t *testing.T) {
		victim := hostContainer(t, swarmVictim)
		restoreHost(t, swarmVictim)
		// Registered after restoreHost, so it runs first: a paused host
		// must be thawed before it can be waited for.
		t.Cleanup(func() { _ = exec.Command("docker", "unpause", victim).Run() })
		kills := envInt("BERTH_BENCH_SWARM_KILLS", 3)
		for _, fault := range []string{"kill", "pause"} {
			var berthUnreachable, berthOut, swarmDown []time.Duration
			for i := range kills {
				run := []func(){
					func() {
						out, unreachable := berthDetect(t, fault)
						berthOut, berthUnreachable = append(berthOut, out), append(berthUnreachable, unreachable)
						t.Logf("%s %d: berth: %s out of placement after %s, unreachable after %s", fault, i+1, swarmVictim,
							out.Round(time.Millisecond), unreachable.Round(time.Millisecond))
					},
					func() {
						d := sw.detect(t, fault)
						swarmDown = append(swarmDown, d)
						t.Logf("%s %d: Swarm: worker down after %s", fault, i+1, d.Round(time.Millisecond))
					},
				}
				run[i%2]()
				run[(i+1)%2]()
			}
			swarmLines("detect_"+fault+"/berth", berthUnreachable)
			swarmLines("detect_"+fault+"/berth_out_of_placement", berthOut)
			swarmLines("detect_"+fault+"/swarm", swarmDown)
		}
	})
}

// swarmSeries is one side of the create comparison: create n workspaces at
// once and return each one's create -> running time, measured from the
// moment all n were sent; everything it made is gone when it returns.
type swarmSeries struct {
	name, note string
	create     func(t *testing.T, n int) []time.Duration
}

// swarmLines prints p50, p99 and max of d (nearest rank).
func swarmLines(name string, d []time.Duration) {
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p99", 0.99}, {"max", 1}} {
		benchLine("swarm/"+name+"/"+q.name, len(d), float64(swarmPct(d, q.q).Nanoseconds()), "ns/op")
	}
}

// swarmPct is the q-quantile of d by nearest rank (the smallest value with
// at least q of the values at or below it).
func swarmPct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, max(0, int(math.Ceil(q*float64(len(s))))-1))]
}

// swarmBenchServers is a COMPUTE_WORKSPACE_SERVERS setting for
// startScheduler (the last value of a variable wins, so it replaces the
// seeds startScheduler writes): the compose hosts, each with room for n
// starters, bandwidth included, which startScheduler's seeds cannot set
// (1000 Mbps by default: ten starters).
func swarmBenchServers(t *testing.T, n int64) string {
	t.Helper()
	spec := tiers.Builtin().Resolve("starter").Resources()
	var servers []map[string]any
	for _, h := range hosts {
		_, port, err := net.SplitHostPort(h.addr)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		servers = append(servers, map[string]any{
			"id": h.id, "name": h.id, "hostname": h.id, "ip_address": "127.0.0.1", "agent_port": p,
			"architecture": "amd64", "region": "local",
			"total_cpu": spec.CPU * float64(n), "total_memory_mb": spec.MemoryMB * n,
			"total_disk_gb": spec.DiskGB * n, "total_bandwidth_mbps": spec.BandwidthMbps * n,
		})
	}
	b, err := json.Marshal(servers)
	if err != nil {
		t.Fatal(err)
	}
	return "COMPUTE_WORKSPACE_SERVERS=" + string(b)
}

// berthCreator creates starter workspaces on s, n at once, each until its
// 201 running, then deletes them (and their homes).
func berthCreator(s *scheduler) func(t *testing.T, n int) []time.Duration {
	logged := false
	return func(t *testing.T, n int) []time.Duration {
		t.Helper()
		k := s.api.as("bench-swarm")
		session := uniqueID("bench-swarm")
		label := "label=podex.session_id=" + session
		ids := make([]string, n)
		for i := range ids {
			ids[i] = uniqueID("bench-swarm")
		}
		deleted := false
		t.Cleanup(func() {
			if !deleted {
				deleteAll(t, k, ids, label)
			}
		})
		took := make([]time.Duration, n)
		errs := make([]error, n)
		made := make([]info, n)
		start := make(chan struct{})
		var t0 time.Time // written before start is closed, read after
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				<-start
				r, err := k.tryDo(http.MethodPost, "/workspaces", createBody(session, id, starter()))
				took[i] = time.Since(t0)
				var ws info
				switch {
				case err != nil:
				case r.status != http.StatusCreated:
					err = fmt.Errorf("got %s, want 201", r)
				default:
					if err = json.Unmarshal(r.body, &ws); err == nil && ws.Status != "running" {
						err = fmt.Errorf("201 with status %q, want running", ws.Status)
					}
				}
				errs[i], made[i] = err, ws
			})
		}
		t0 = time.Now()
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("%d creates at once on %s: %v", n, s.url, err)
		}
		if !logged { // what the workspace's container got, for the comparison's record
			logged = true
			t.Logf("berth's container on %s: %s", made[0].ServerID, innerDocker(t, made[0].ServerID, "inspect", "--format",
				"runtime {{.HostConfig.Runtime}}, NanoCpus {{.HostConfig.NanoCpus}}, Memory {{.HostConfig.Memory}}, "+
					"PidsLimit {{.HostConfig.PidsLimit}}, Ulimits {{json .HostConfig.Ulimits}}", made[0].ContainerID))
		}
		deleteAll(t, k, ids, label)
		deleted = true
		return took
	}
}

// ---------------------------------------------------------------------------
// The Swarm: two throwaway DinD nodes

// swarmEngine is a client of one node's Docker engine API on its unix
// socket (the measured calls go through it, not the CLI: no process start
// per call, as berth's side is one HTTP request per workspace).
type swarmEngine struct{ http *http.Client }

func newSwarmEngine(sock string) *swarmEngine {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 64,
	}
	return &swarmEngine{http: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// call sends a request to the engine; out, when not nil, receives the JSON
// answer. An answer of 300 or more is an error with the engine's message.
func (e *swarmEngine) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://docker"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, path, err, data)
		}
	}
	return nil
}

// labelFilter is a filters query parameter selecting the test's objects.
func labelFilter() string {
	f, _ := json.Marshal(map[string][]string{"label": {swarmLabel + "=" + runStamp}})
	return "filters=" + url.QueryEscape(string(f))
}

// swarmNode is one throwaway DinD container running only its dockerd.
type swarmNode struct {
	name   string       // the container's name
	eng    *swarmEngine // its dockerd's API, on the socket bind-mounted out
	ip     string       // on the test's network
	nodeID string       // in the swarm
}

// swarm is the test's two-node swarm.
type swarm struct {
	network         string
	image           string // the ID of berth/workspace:dev, loaded into both nodes
	manager, worker *swarmNode
}

// startSwarm starts the two nodes on a network of their own, loads the
// workspace image into both, makes the first the manager and joins the
// second as a worker; the nodes (with their volumes) and the network are
// removed when the test ends.
func startSwarm(t *testing.T) *swarm {
	t.Helper()
	if st := docker(t, "info", "--format", "{{.Swarm.LocalNodeState}}"); st != "inactive" {
		t.Logf("note: the machine's engine is in a swarm (%s); the test does not use it", st)
	} else {
		t.Cleanup(func() {
			if st, err := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").Output(); err != nil ||
				strings.TrimSpace(string(st)) != "inactive" {
				t.Errorf("the machine's engine is in a swarm after the test: %q %v", st, err)
			}
		})
	}
	sw := &swarm{network: "berth-bench-swarm-" + runStamp}
	// By ID: a task whose image is a tag is pulled first, and only a failed
	// pull (no registry here) falls back to the local image; by ID the
	// local image is used at once, as berth's agents never pull on create.
	sw.image = docker(t, "image", "inspect", "--format", "{{.Id}}", "berth/workspace:dev")
	archive := filepath.Join(t.TempDir(), "workspace.tar")
	docker(t, "save", "-o", archive, "berth/workspace:dev")

	docker(t, "network", "create", "--label", swarmLabel+"="+runStamp, sw.network)
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "network", "rm", sw.network).CombinedOutput(); err != nil {
			t.Errorf("cleanup: docker network rm %s: %v\n%s", sw.network, err, out)
		}
	})
	// The compose hosts' capabilities and security options.
	var host struct {
		HostConfig struct {
			CapAdd      []string
			SecurityOpt []string
		}
	}
	if err := json.Unmarshal([]byte(docker(t, "inspect", "--format", "{{json .}}", hostContainer(t, swarmVictim))), &host); err != nil {
		t.Fatal(err)
	}
	var secure []string
	for _, c := range host.HostConfig.CapAdd {
		secure = append(secure, "--cap-add", c)
	}
	for _, o := range host.HostConfig.SecurityOpt {
		secure = append(secure, "--security-opt", o)
	}
	sw.manager = sw.startNode(t, "manager", "10.230", secure)
	sw.worker = sw.startNode(t, "worker", "10.232", secure)

	var wg sync.WaitGroup
	loadErrs := make([]error, 2)
	for i, n := range []*swarmNode{sw.manager, sw.worker} {
		wg.Go(func() {
			f, err := os.Open(archive)
			if err != nil {
				loadErrs[i] = err
				return
			}
			defer f.Close()
			cmd := exec.Command("docker", "exec", "-i", n.name, "docker", "load", "-q")
			cmd.Stdin = f
			if out, err := cmd.CombinedOutput(); err != nil {
				loadErrs[i] = fmt.Errorf("load the workspace image into %s: %v\n%s", n.name, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(loadErrs...); err != nil {
		t.Fatal(err)
	}

	docker(t, "exec", sw.manager.name, "docker", "swarm", "init", "--advertise-addr", sw.manager.ip)
	token := docker(t, "exec", sw.manager.name, "docker", "swarm", "join-token", "-q", "worker")
	docker(t, "exec", sw.worker.name, "docker", "swarm", "join", "--token", token, sw.manager.ip+":2377")
	for _, n := range []*swarmNode{sw.manager, sw.worker} {
		n.nodeID = docker(t, "exec", n.name, "docker", "info", "--format", "{{.Swarm.NodeID}}")
		sw.waitNode(t, n, "ready", time.Minute)
	}
	t.Logf("Swarm: manager %s (%s) and worker %s (%s) on %s; workspace image %s",
		sw.manager.nodeID, sw.manager.ip, sw.worker.nodeID, sw.worker.ip, sw.network, sw.image)
	return sw
}

// startNode starts one node: berth/host:dev running only dockerd, as
// host-entrypoint.sh starts it (stale pid files removed, inner containers'
// cgroups under the node's own, its own address ranges from prefix), with
// its API socket also in a directory bind-mounted out for the test.
func (sw *swarm) startNode(t *testing.T, role, prefix string, secure []string) *swarmNode {
	t.Helper()
	n := &swarmNode{name: "berth-bench-swarm-" + role + "-" + runStamp}
	apiDir := t.TempDir()
	n.eng = newSwarmEngine(filepath.Join(apiDir, "docker.sock"))
	script := `find /run /var/run -maxdepth 3 \( -name 'docker*.pid' -o -name 'containerd*.pid' \) -delete 2>/dev/null
args=(--host=unix:///var/run/docker.sock --host=unix:///run/bench-api/docker.sock --log-level=warn
	--bip="$PREFIX.1.1/24" --default-address-pool="base=$PREFIX.0.0/16,size=24")
own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
if [[ -n $own && $own != / && -w /sys/fs/cgroup/memory$own ]]; then args+=(--cgroup-parent="$own/docker"); fi
exec dockerd "${args[@]}"`
	args := []string{"run", "-d", "--name", n.name, "--hostname", n.name, "--network", sw.network,
		"--label", swarmLabel + "=" + runStamp, "--security-opt", "systempaths=unconfined",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", apiDir + ":/run/bench-api", "-e", "PREFIX=" + prefix}
	args = append(args, secure...)
	args = append(args, "--entrypoint", "/usr/bin/tini", "berth/host:dev", "--", "bash", "-c", script)
	t.Cleanup(func() {
		_ = exec.Command("docker", "unpause", n.name).Run()
		if out, err := exec.Command("docker", "rm", "-f", "-v", n.name).CombinedOutput(); err != nil {
			t.Errorf("cleanup: docker rm -f -v %s: %v\n%s", n.name, err, out)
		}
	})
	docker(t, args...)
	n.waitUp(t)
	n.ip = docker(t, "inspect", "--format", "{{(index .NetworkSettings.Networks \""+sw.network+"\").IPAddress}}", n.name)
	return n
}

// waitUp waits until the node's dockerd answers on its socket.
func (n *swarmNode) waitUp(t *testing.T) {
	t.Helper()
	waitFor(t, time.Minute, n.name+"'s dockerd", func() (bool, string) {
		err := n.eng.call(http.MethodGet, "/_ping", nil, nil)
		return err == nil, fmt.Sprint(err)
	})
}

// containers are the IDs of the test's service containers on a node, in
// any state.
func (n *swarmNode) containers(t *testing.T) []string {
	var list []struct{ ID string }
	if err := n.eng.call(http.MethodGet, "/containers/json?all=1&"+labelFilter(), nil, &list); err != nil {
		t.Errorf("list containers on %s: %v", n.name, err)
		return nil
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids
}

// limits are the tier's process limits with open files capped at the
// nodes' dockerd's hard limit, as berth's agent caps them at its host's
// ("open_files 65536 capped at the host's hard limit"): a container cannot
// be given more (runc fails to start it).
func (sw *swarm) limits(t *testing.T, tier tiers.Spec) wire.ProcessLimits {
	t.Helper()
	lim := tier.ProcessLimits()
	out := docker(t, "exec", sw.manager.name, "sh", "-c", `grep '^Max open files' /proc/$(cat /var/run/docker.pid)/limits`)
	if f := strings.Fields(strings.TrimPrefix(out, "Max open files")); len(f) >= 2 {
		if hard, err := strconv.ParseInt(f[1], 10, 64); err == nil && hard < lim.OpenFiles {
			lim.OpenFiles = hard
		}
	}
	return lim
}

// swarmTask is the part of a task the test reads.
type swarmTask struct {
	ID     string
	NodeID string
	Status struct {
		Timestamp time.Time
		State     string
		Err       string
	}
	Spec struct {
		ContainerSpec struct{ Labels map[string]string }
	}
}

// creator creates n services of one replica each at once, with the tier's
// limits, each until its task runs (as the manager's task list shows it,
// polled every swarmPoll), then removes them and waits until their
// containers are gone from both nodes.
func (sw *swarm) creator(tier tiers.Spec) func(t *testing.T, n int) []time.Duration {
	checked := false
	return func(t *testing.T, n int) []time.Duration {
		t.Helper()
		names := make([]string, n)
		index := map[string]int{}
		for i := range names {
			names[i] = uniqueID("bench-swarm")
			index[names[i]] = i
		}
		t.Cleanup(func() { sw.removeServices(t, names) })
		limits := sw.limits(t, tier)
		spec := func(name string) map[string]any {
			return map[string]any{
				"Name":   name,
				"Labels": map[string]string{swarmLabel: runStamp},
				"TaskTemplate": map[string]any{
					"ContainerSpec": map[string]any{
						"Image":   sw.image,
						"Labels":  map[string]string{swarmLabel: runStamp, swarmLabel + ".name": name},
						"Init":    true, // as berth's agent: Docker's init as PID 1
						"Ulimits": []map[string]any{{"Name": "nofile", "Soft": limits.OpenFiles, "Hard": limits.OpenFiles}},
					},
					"Resources": map[string]any{"Limits": map[string]any{
						"NanoCPUs":    int64(math.Round(tier.VCPU * 1e9)),
						"MemoryBytes": tier.MemoryMB << 20,
						"Pids":        limits.Processes,
					}},
					"RestartPolicy": map[string]any{"Condition": "none"},
				},
				"Mode": map[string]any{"Replicated": map[string]any{"Replicas": 1}},
			}
		}

		took := make([]time.Duration, n)
		var stamped []time.Duration // the task's own running timestamp, for the log
		perNode := map[string]int{}
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				<-start
				errs[i] = sw.manager.eng.call(http.MethodPost, "/services/create", spec(name), nil)
			})
		}
		t0 := time.Now()
		close(start)
		running := map[string]bool{}
		var last string
		for deadline := t0.Add(3 * time.Minute); len(running) < n; time.Sleep(swarmPoll) {
			if time.Now().After(deadline) {
				wg.Wait()
				t.Fatalf("%d of %d services running within 3 minutes (create errors: %v); last: %s",
					len(running), n, errors.Join(errs...), last)
			}
			var tasks []swarmTask
			if err := sw.manager.eng.call(http.MethodGet, "/tasks", nil, &tasks); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for _, task := range tasks {
				name := task.Spec.ContainerSpec.Labels[swarmLabel+".name"]
				i, ok := index[name]
				if !ok || running[name] {
					continue
				}
				switch task.Status.State {
				case "running":
					running[name] = true
					took[i] = now.Sub(t0)
					stamped = append(stamped, task.Status.Timestamp.Sub(t0))
					perNode[task.NodeID]++
				case "failed", "rejected", "orphaned", "shutdown", "complete":
					wg.Wait()
					t.Fatalf("service %s: task %s %s: %s", name, task.ID, task.Status.State, task.Status.Err)
				default:
					last = name + " " + task.Status.State
				}
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("creating %d services: %v", n, err)
		}
		t.Logf("Swarm, %d at once: p50 %s polled, %s by the tasks' own timestamps; tasks per node %v", n,
			swarmPct(took, 0.5).Round(time.Millisecond), swarmPct(stamped, 0.5).Round(time.Millisecond), perNode)
		if !checked {
			sw.checkLimits(t, limits, tier)
			checked = true
		}
		sw.removeServices(t, names)
		return took
	}
}

// checkLimits checks that a service's container got the tier's limits.
func (sw *swarm) checkLimits(t *testing.T, lim wire.ProcessLimits, tier tiers.Spec) {
	t.Helper()
	var node *swarmNode
	var ids []string
	for _, n := range []*swarmNode{sw.manager, sw.worker} {
		if ids = n.containers(t); len(ids) > 0 {
			node = n
			break
		}
	}
	if node == nil {
		t.Fatal("no container of the test's services on either node")
	}
	var c struct {
		HostConfig struct {
			NanoCpus  int64
			Memory    int64
			PidsLimit int64
			Ulimits   []struct {
				Name       string
				Soft, Hard int64
			}
		}
	}
	if err := node.eng.call(http.MethodGet, "/containers/"+ids[0]+"/json", nil, &c); err != nil {
		t.Fatal(err)
	}
	h := c.HostConfig
	if h.NanoCpus != int64(tier.VCPU*1e9) || h.Memory != tier.MemoryMB<<20 || h.PidsLimit != lim.Processes ||
		len(h.Ulimits) != 1 || h.Ulimits[0].Soft != lim.OpenFiles {
		t.Fatalf("Swarm's container: %+v, want the starter tier's limits (%g vCPU, %d MiB, %+v)", h, tier.VCPU, tier.MemoryMB, lim)
	}
	t.Logf("Swarm's container on %s: %+v", node.name, h)
}

// removeServices removes the named services (those that exist) and waits
// until no container of the test is left on either node.
func (sw *swarm) removeServices(t *testing.T, names []string) {
	t.Helper()
	for _, name := range names {
		err := sw.manager.eng.call(http.MethodDelete, "/services/"+name, nil, nil)
		if err != nil && !strings.Contains(err.Error(), "404") {
			t.Errorf("remove service %s: %v", name, err)
		}
	}
	waitFor(t, 2*time.Minute, "the removed services' containers gone", func() (bool, string) {
		left := len(sw.manager.containers(t)) + len(sw.worker.containers(t))
		return left == 0, fmt.Sprintf("%d left", left)
	})
}

// nodeState is a node's status as the manager sees it.
func (sw *swarm) nodeState(t *testing.T, n *swarmNode) string {
	var node struct{ Status struct{ State string } }
	if err := sw.manager.eng.call(http.MethodGet, "/nodes/"+n.nodeID, nil, &node); err != nil {
		t.Fatal(err)
	}
	return node.Status.State
}

// waitNode polls until the manager lists the node in state.
func (sw *swarm) waitNode(t *testing.T, n *swarmNode, state string, within time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		st := sw.nodeState(t, n)
		if st == state {
			return
		}
		if time.Since(start) > within {
			t.Fatalf("Swarm node %s: not %s within %s; last %s", n.name, state, within, st)
		}
		time.Sleep(swarmPoll)
	}
}

// detect kills or pauses the worker, measures until the manager lists it
// down, and brings it back ready.
func (sw *swarm) detect(t *testing.T, fault string) time.Duration {
	t.Helper()
	start := time.Now()
	docker(t, fault, sw.worker.name)
	sw.waitNode(t, sw.worker, "down", 2*time.Minute)
	took := time.Since(start)
	if fault == "kill" {
		docker(t, "start", sw.worker.name)
	} else {
		docker(t, "unpause", sw.worker.name)
	}
	sw.waitNode(t, sw.worker, "ready", 2*time.Minute)
	return took
}

// berthDetect kills or pauses the berth host swarmVictim, measures until
// the compose scheduler takes it out of placement and until it reports it
// unreachable, then brings it back and waits until it is placeable again.
func berthDetect(t *testing.T, fault string) (outOfPlacement, unreachable time.Duration) {
	t.Helper()
	waitHealth(t, swarmVictim, 2*time.Minute, "healthy before the fault", placeable)
	id := hostContainer(t, swarmVictim)
	start := time.Now()
	docker(t, fault, id)
	var last string
	for unreachable == 0 {
		if time.Since(start) > time.Minute {
			t.Fatalf("%s after docker %s: not unreachable within a minute; last health %q", swarmVictim, fault, last)
		}
		last = serverHealth(t)[swarmVictim]
		if last != "" && !placeable(last) && outOfPlacement == 0 {
			outOfPlacement = time.Since(start)
		}
		if last == "unreachable" {
			unreachable = time.Since(start)
		}
		time.Sleep(swarmPoll)
	}
	if fault == "kill" {
		docker(t, "start", id)
	} else {
		docker(t, "unpause", id)
	}
	waitHealth(t, swarmVictim, 2*time.Minute, "healthy again", placeable)
	return outOfPlacement, unreachable
}
