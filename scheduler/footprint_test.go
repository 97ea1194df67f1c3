package main

// TestBenchFootprint measures what each registered server costs the
// scheduler (issue 13, "footprint at 10,000 hosts"), for `make bench`
// (scripts/bench.sh runs it with BERTH_BENCH=1). No cluster and no Docker:
//
//   - fake agents in other processes: tools/fakefleet, at most
//     BERTH_FOOTPRINT_PER_PROC (2,500) per process, each a real mTLS API on
//     its own 127.0.0.1 port with its own certificate of a fresh CA and a
//     real memberlist member (gossip key, cluster label; see fakefleet's
//     comment for how thousands of members share one machine);
//   - the scheduler binary (`scheduler serve`, built from this tree, or the
//     one BERTH_FOOTPRINT_SCHEDULER names: the "before" of a change) as its
//     own process, with gossip on and everything else at its defaults (or
//     as BERTH_FOOTPRINT_ENV sets: KEY=VALUE settings separated by spaces),
//     its registry holding one server per fake agent and
//     BERTH_FOOTPRINT_WORKSPACES_PER_SERVER (10) workspaces on each — 100,000
//     at 10,000 agents — stopped, with their reservations (written before it
//     starts; stopped, because a fake agent has no containers and the
//     registry must agree with the hosts, or reconciliation would rewrite
//     every row while the test measures);
//   - the scheduler joins the fleet's gossip leaders (BERTH_JOIN); the test
//     waits until the scheduler's /metrics count every server healthy and
//     every agent alive in gossip (all but 1 %: see measure), lets it settle
//     (BERTH_FOOTPRINT_SETTLE, 90 s), then reads the scheduler's RSS
//     (/proc/<pid>/status, every second) and CPU time (/proc/<pid>/stat)
//     over BERTH_FOOTPRINT_WINDOW (60 s); it logs the peaks of RSS and open
//     files until every server was healthy, and where the RSS is after the
//     window (anonymous and file-backed, and Go's heap). With
//     BERTH_FOOTPRINT_HEAP_PROFILE=path, the scheduler's heap profile after
//     the window goes to path.agents-<n>; with BERTH_FOOTPRINT_CPU_PROFILE=
//     path, a profile of its CPU over the window's first 30 s (go tool
//     pprof; the scheduler's SIGUSR1 and SIGUSR2, see profileOnSignal).
//
// For each size of BERTH_FOOTPRINT_AGENTS (default "1000,10000"; a run with
// 0 agents comes first, the baseline) it prints Go-benchmark-style lines,
// "BenchmarkFootprint/agents=<n>/<name> 1 <value> <unit>": scheduler_rss_mb
// (mean over the window), scheduler_rss_max_mb, kib_per_agent ((mean RSS at
// n − mean RSS at 0) / n), scheduler_cpu_pct (% of one core over the
// window), cpu_pct_per_1000_agents, fleet_cpu_pct (the fake agents'
// processes, for context: they share the machine's cores) and
// ready_seconds (scheduler start → every server healthy). It fails only
// when a measurement cannot be taken; no figure is asserted.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentproc"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
	"berth/shared/wire"
)

func TestBenchFootprint(t *testing.T) {
	if os.Getenv("BERTH_BENCH") != "1" {
		t.Skip("benchmark: run `make bench` (or BERTH_BENCH=1 go test -run TestBenchFootprint ./scheduler/)")
	}
	var sizes []int
	for _, f := range strings.Split(envOr("BERTH_FOOTPRINT_AGENTS", "1000,10000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("BERTH_FOOTPRINT_AGENTS: %q is not a positive count", f)
		}
		sizes = append(sizes, n)
	}
	fp := &footprint{
		dir:       t.TempDir(),
		window:    envDuration(t, "BERTH_FOOTPRINT_WINDOW", time.Minute),
		settle:    envDuration(t, "BERTH_FOOTPRINT_SETTLE", 90*time.Second),
		perProc:   envInt(t, "BERTH_FOOTPRINT_PER_PROC", 2500),
		perServer: envCount(t, "BERTH_FOOTPRINT_WORKSPACES_PER_SERVER", 10),
	}
	fp.build(t)
	fp.pki(t)
	base := fp.measure(t, 0)
	base.print(nil)
	for _, n := range sizes {
		fp.measure(t, n).print(&base)
	}
}

// TestBenchAgentFootprint measures the real agent (bin/agent built from
// this tree, agentproc: the machine's Docker daemon, gossip on, alone in
// its pool) with no workspace, then with BERTH_FOOTPRINT_WORKSPACES (100)
// running on its host (the test image running `sleep infinity`, 0.1 CPU and
// 64 MiB each, made through the agent's API), each after
// BERTH_FOOTPRINT_SETTLE (20 s) and over BERTH_FOOTPRINT_WINDOW (60 s):
// "BenchmarkFootprint/agent/workspaces=<n>/<name> 1 <value> <unit>" lines
// (agent_rss_mb, the mean; agent_rss_max_mb; agent_cpu_pct; and
// kib_per_workspace against the run with none). The workspaces are removed
// at the end, whatever happens.
func TestBenchAgentFootprint(t *testing.T) {
	if os.Getenv("BERTH_BENCH") != "1" {
		t.Skip("benchmark: run `make bench` (or BERTH_BENCH=1 go test -run TestBenchAgentFootprint ./scheduler/)")
	}
	n := envInt(t, "BERTH_FOOTPRINT_WORKSPACES", 100)
	window := envDuration(t, "BERTH_FOOTPRINT_WINDOW", time.Minute)
	settle := envDuration(t, "BERTH_FOOTPRINT_SETTLE", 20*time.Second)
	a := agentproc.Start(t, "ws-footprint")
	ctx := context.Background()
	measure := func(workspaces int) (rss, rssMax, cpu float64) {
		time.Sleep(settle)
		cpu0, t0 := cpuTicks(t, a.PID), time.Now()
		var sum float64
		var samples int
		for time.Since(t0) < window {
			time.Sleep(time.Second)
			v := rssMB(t, a.PID)
			sum += v
			samples++
			rssMax = max(rssMax, v)
		}
		cpu = 100 * float64(cpuTicks(t, a.PID)-cpu0) / clockTicks / time.Since(t0).Seconds()
		rss = sum / float64(samples)
		line := func(name string, v float64, unit string) {
			fmt.Printf("BenchmarkFootprint/agent/workspaces=%d/%s\t1\t%.2f %s\n", workspaces, name, v, unit)
		}
		line("agent_rss_mb", rss, "MB")
		line("agent_rss_max_mb", rssMax, "MB")
		line("agent_cpu_pct", cpu, "%")
		return rss, rssMax, cpu
	}
	idle, _, _ := measure(0)

	var mu sync.Mutex
	var ids []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			_ = a.Client.Remove(context.Background(), id, true)
		}
	})
	prefix := fmt.Sprintf("berth-footprint-%d", time.Now().UnixNano())
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := a.Client.Create(ctx, wire.CreateContainerRequest{Name: fmt.Sprintf("%s-%d", prefix, i), Image: agentproc.Image(),
					Cmd: []string{"sleep", "infinity"}, Start: true, WorkspaceID: fmt.Sprintf("fp-%d", i), Resources: wire.Resources{CPU: 0.1, MemoryMB: 64}})
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				ids = append(ids, c.ID)
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create: %v", err)
	}
	rss, _, _ := measure(n)
	fmt.Printf("BenchmarkFootprint/agent/workspaces=%d/kib_per_workspace\t1\t%.2f KiB\n", n, (rss-idle)*1024/float64(n))
}

type footprint struct {
	dir, scheduler, fleet    string // binaries
	caCert, caKey, cert, key string
	gossipKeyFile            string
	window, settle           time.Duration
	perProc                  int
	perServer                int // workspaces in the registry per server
	runs                     int
}

type footprintRun struct {
	agents                            int
	rssMB, rssMaxMB, cpuPct, fleetPct float64
	heapMB, goroutines, fds           float64 // after the window
	ready                             time.Duration
}

func (r footprintRun) print(base *footprintRun) {
	line := func(name string, v float64, unit string) {
		fmt.Printf("BenchmarkFootprint/agents=%d/%s\t1\t%.2f %s\n", r.agents, name, v, unit)
	}
	line("scheduler_rss_mb", r.rssMB, "MB")
	line("scheduler_rss_max_mb", r.rssMaxMB, "MB")
	line("scheduler_cpu_pct", r.cpuPct, "%")
	line("scheduler_heap_inuse_mb", r.heapMB, "MB")
	line("scheduler_goroutines", r.goroutines, "goroutines")
	line("scheduler_open_fds", r.fds, "fds")
	if base != nil && r.agents > 0 {
		line("kib_per_agent", (r.rssMB-base.rssMB)*1024/float64(r.agents), "KiB")
		line("cpu_pct_per_1000_agents", (r.cpuPct-base.cpuPct)*1000/float64(r.agents), "%")
		line("fleet_cpu_pct", r.fleetPct, "%")
		line("ready_seconds", r.ready.Seconds(), "s")
	}
}

// build compiles the scheduler (unless BERTH_FOOTPRINT_SCHEDULER names one)
// and tools/fakefleet.
func (fp *footprint) build(t *testing.T) {
	fp.scheduler = os.Getenv("BERTH_FOOTPRINT_SCHEDULER")
	targets := map[string]*string{"berth/tools/fakefleet": &fp.fleet}
	if fp.scheduler == "" {
		targets["berth/scheduler"] = &fp.scheduler
	}
	for pkg, out := range targets {
		*out = filepath.Join(fp.dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", *out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
}

// pki writes a CA (certificate and key: the fleet signs its agents'
// certificates), the scheduler's certificate and a gossip key.
func (fp *footprint) pki(t *testing.T) {
	pki := testutil.NewPKI(t)
	fp.caCert, fp.caKey = pki.CAFile, pki.WriteCAKey()
	fp.cert, fp.key = pki.Issue("scheduler", wire.RoleScheduler, false)
	gk := make([]byte, 32)
	_, _ = rand.Read(gk)
	fp.gossipKeyFile = filepath.Join(fp.dir, "gossip.key")
	if err := os.WriteFile(fp.gossipKeyFile, []byte(base64.StdEncoding.EncodeToString(gk)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

type fleetAgent struct {
	ID         string `json:"id"`
	AgentAddr  string `json:"agent_addr"`
	GossipAddr string `json:"gossip_addr"`
	Leader     bool   `json:"leader"`
}

// measure runs the fleet and the scheduler with n servers and measures.
func (fp *footprint) measure(t *testing.T, n int) footprintRun {
	fp.runs++
	run := filepath.Join(fp.dir, fmt.Sprintf("run%d", fp.runs))
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	agents, fleetPIDs, stopFleet := fp.startFleet(t, run, n)
	defer stopFleet()
	t.Logf("agents=%d: fleet of %d processes ready", n, len(fleetPIDs))
	fp.register(t, run, agents)

	var join []string
	for _, a := range agents {
		if a.Leader {
			join = append(join, a.GossipAddr)
		}
	}
	addrs := freeAddrs(t, 2)
	addr := addrs[0]
	cmd := exec.Command(fp.scheduler, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_LISTEN=" + addr, "BERTH_DATA_DIR=" + run,
		"BERTH_TLS_CERT=" + fp.cert, "BERTH_TLS_KEY=" + fp.key, "BERTH_TLS_CA=" + fp.caCert,
		"INTERNAL_SERVICE_TOKEN=footprint-service-token", "BERTH_ADMIN_TOKEN=footprint-admin-token",
		"BERTH_GOSSIP_KEY_FILE=" + fp.gossipKeyFile, "BERTH_GOSSIP_BIND=" + addrs[1],
		"BERTH_JOIN=" + strings.Join(join, ","), "BERTH_LOG_LEVEL=warn",
	}
	cmd.Env = append(cmd.Env, strings.Fields(os.Getenv("BERTH_FOOTPRINT_ENV"))...)
	logFile, err := os.Create(filepath.Join(run, "scheduler.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	// Every server healthy and alive in gossip — all but 1 % of them: on a
	// machine this busy memberlist's sub-second probes may find a fake
	// agent slow and declare it dead for a while (it refutes and comes back).
	deadline := time.Now().Add(10*time.Minute + time.Duration(n)*20*time.Millisecond)
	var last string
	var startRSS, startFDs float64 // the peaks until every server is healthy
	for {
		startRSS = max(startRSS, rssMB(t, cmd.Process.Pid))
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)); err == nil {
			startFDs = max(startFDs, float64(len(fds)))
		}
		c, err := clusterView("http://" + addr)
		if err == nil {
			last = fmt.Sprintf("healthy %d/%d, members %v", c.healthy, n, c.members)
			if c.servers == n && c.healthy >= n-n/100 && c.members["alive"] >= n-n/100 {
				break
			}
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("agents=%d: the scheduler exited: %s", n, tail(b))
		case <-time.After(2 * time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents=%d: not every server healthy in time: %s", n, last)
		}
	}
	r := footprintRun{agents: n, ready: time.Since(start)}
	t.Logf("agents=%d: ready after %s (%s; peaks until then: RSS %.0f MB, %.0f open files); settling %s, then measuring %s",
		n, r.ready.Round(time.Second), last, startRSS, startFDs, fp.settle, fp.window)
	time.Sleep(fp.settle)

	pid := cmd.Process.Pid
	cpuProfile := os.Getenv("BERTH_FOOTPRINT_CPU_PROFILE")
	if cpuProfile != "" && n > 0 {
		if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil { // the first 30 s of the window
			t.Fatal(err)
		}
	}
	cpu0, fleet0, t0 := cpuTicks(t, pid), fleetTicks(t, fleetPIDs), time.Now()
	var sum float64
	var samples int
	for time.Since(t0) < fp.window {
		time.Sleep(time.Second)
		rss := rssMB(t, pid)
		sum += rss
		samples++
		r.rssMaxMB = max(r.rssMaxMB, rss)
	}
	elapsed := time.Since(t0).Seconds()
	r.rssMB = sum / float64(samples)
	r.cpuPct = 100 * float64(cpuTicks(t, pid)-cpu0) / clockTicks / elapsed
	r.fleetPct = 100 * float64(fleetTicks(t, fleetPIDs)-fleet0) / clockTicks / elapsed
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		r.fds = float64(len(fds))
	}
	if dest := os.Getenv("BERTH_FOOTPRINT_HEAP_PROFILE"); dest != "" && n > 0 {
		fp.profile(t, cmd.Process, syscall.SIGUSR1, filepath.Join(run, "heap-*.pprof"), fmt.Sprintf("%s.agents-%d", dest, n))
	}
	if cpuProfile != "" && n > 0 {
		fp.profile(t, cmd.Process, nil, filepath.Join(run, "cpu-*.pprof"), fmt.Sprintf("%s.agents-%d", cpuProfile, n))
	}
	if c, err := clusterView("http://" + addr); err == nil {
		t.Logf("agents=%d: after the window %d servers healthy, members %v", n, c.healthy, c.members)
		r.heapMB, r.goroutines = c.gauges["go_memstats_heap_inuse_bytes"]/(1<<20), c.gauges["go_goroutines"]
		// Where the RSS is: Go's heap (in use, idle and not yet returned),
		// its other memory, and what is outside Go (SQLite's page caches,
		// in C) or mapped from files.
		mb := func(k string) string { return fmt.Sprintf("%.1f", c.gauges[k]/(1<<20)) }
		t.Logf("agents=%d: memory: %s; go heap inuse %s MB, idle %s MB (released %s MB), go sys %s MB, stacks %s MB",
			n, procMemory(t, pid), mb("go_memstats_heap_inuse_bytes"), mb("go_memstats_heap_idle_bytes"),
			mb("go_memstats_heap_released_bytes"), mb("go_memstats_sys_bytes"), mb("go_memstats_stack_inuse_bytes"))
	}
	return r
}

// profile has the scheduler write a profile into its data directory (sig,
// when not nil: see profileOnSignal), waits for the file matching pattern
// and copies it to dest.
func (fp *footprint) profile(t *testing.T, p *os.Process, sig os.Signal, pattern, dest string) {
	if sig != nil {
		if err := p.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	var file string
	deadline := time.Now().Add(time.Minute)
	for file == "" {
		if matches, _ := filepath.Glob(pattern); len(matches) > 0 {
			file = matches[0] // renamed into place once written whole
		}
		if time.Now().After(deadline) {
			t.Fatalf("no profile %s from the scheduler within a minute", pattern)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("profile: %s", dest)
}

// startFleet starts the fake agents, at most perProc per process, and
// returns them once every process is ready.
func (fp *footprint) startFleet(t *testing.T, run string, n int) ([]fleetAgent, []int, func()) {
	var (
		cmds   []*exec.Cmd
		outs   []string
		pids   []int
		agents []fleetAgent
	)
	stop := func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}
	ready := make(chan error, n/fp.perProc+1)
	for first := 0; first < n; first += fp.perProc {
		out := filepath.Join(run, fmt.Sprintf("fleet-%d.jsonl", first))
		cmd := exec.Command(fp.fleet, "-ca-cert", fp.caCert, "-ca-key", fp.caKey,
			"-n", strconv.Itoa(min(fp.perProc, n-first)), "-first", strconv.Itoa(first),
			"-out", out, "-gossip-key-file", fp.gossipKeyFile)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			stop()
			t.Fatal(err)
		}
		cmds, outs, pids = append(cmds, cmd), append(outs, out), append(pids, cmd.Process.Pid)
		go func() {
			sc := bufio.NewScanner(stdout)
			if sc.Scan() && sc.Text() == "ready" {
				ready <- nil
				for sc.Scan() {
				}
				return
			}
			ready <- fmt.Errorf("fakefleet %s did not get ready", out)
		}()
	}
	for range cmds {
		select {
		case err := <-ready:
			if err != nil {
				stop()
				t.Fatal(err)
			}
		case <-time.After(10 * time.Minute):
			stop()
			t.Fatal("fakefleet: not ready within 10 minutes")
		}
	}
	for _, out := range outs {
		f, err := os.Open(out)
		if err != nil {
			stop()
			t.Fatal(err)
		}
		dec := json.NewDecoder(f)
		for dec.More() {
			var a fleetAgent
			if err := dec.Decode(&a); err != nil {
				stop()
				t.Fatal(err)
			}
			agents = append(agents, a)
		}
		f.Close()
	}
	return agents, pids, stop
}

// register writes one server per agent into the registry the scheduler
// will open, concurrently (the registry commits concurrent writes
// together).
func (fp *footprint) register(t *testing.T, run string, agents []fleetAgent) {
	ctx := context.Background()
	db, err := registry.Open(ctx, filepath.Join(run, "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	work := make(chan fleetAgent)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				host, port, _ := net.SplitHostPort(a.AgentAddr)
				p, _ := strconv.Atoi(port)
				err := fp.registerOne(ctx, db, registry.Server{ID: a.ID, Hostname: a.ID, IPAddress: host, AgentPort: p,
					Architecture: "amd64", Region: "eu-central", TotalCPU: 64, TotalMemoryMB: 262144, TotalDiskGB: 4000,
					TotalBandwidthMbps: 10000})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, a := range agents {
		work <- a
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// registerOne writes a server and its stopped workspaces.
func (fp *footprint) registerOne(ctx context.Context, db *registry.DB, srv registry.Server) error {
	if _, err := db.CreateServer(ctx, srv); err != nil {
		return err
	}
	for i := range fp.perServer {
		id := fmt.Sprintf("%s-ws-%d", srv.ID, i)
		if _, err := db.ReserveAndInsert(ctx, registry.Workspace{ID: id, UserID: "footprint-user", SessionID: "s", Tier: "starter",
			ServerID: srv.ID, Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}},
			registry.Credentials{}, registry.Limits{}); err != nil {
			return err
		}
		if _, err := db.UpdateWorkspace(ctx, id, func(w *registry.Workspace) error {
			w.Status, w.StatusReason, w.AcknowledgedAt = fleet.StatusStopped, "footprint", time.Now().UTC()
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// cluster is what the scheduler's /metrics says of the fleet: servers by
// health (the tracker's, live), gossip members by state, and the Go
// runtime's gauges. Read from /metrics rather than /admin/cluster, which
// takes the orchestrator's fleet view: a scrape also reads every server's
// row, so it is read every few seconds while waiting, and once after the
// window.
type cluster struct {
	servers, healthy int
	members          map[string]int
	gauges           map[string]float64
}

func clusterView(base string) (cluster, error) {
	c := cluster{members: map[string]int{}, gauges: map[string]float64{}}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(f[0], "berth_server_health{"):
			c.servers++
			if strings.Contains(f[0], `health="healthy"`) {
				c.healthy++
			}
		case strings.HasPrefix(f[0], "berth_gossip_members{"):
			if i := strings.Index(f[0], `state="`); i >= 0 {
				state := f[0][i+len(`state="`):]
				c.members[state[:strings.IndexByte(state, '"')]] += int(v)
			}
		case strings.HasPrefix(f[0], "go_"):
			c.gauges[f[0]] = v
		}
	}
	return c, sc.Err()
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTicks = 100

// cpuTicks is the user + system time of pid.
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

func fleetTicks(t *testing.T, pids []int) int64 {
	var sum int64
	for _, p := range pids {
		sum += cpuTicks(t, p)
	}
	return sum
}

// rssMB is VmRSS of pid in MB (2^20 bytes).
func rssMB(t *testing.T, pid int) float64 {
	kb, ok := procStatus(t, pid)["VmRSS"]
	if !ok {
		t.Fatalf("no VmRSS for pid %d", pid)
	}
	return kb / 1024
}

// procMemory is the RssAnon, RssFile and RssShmem lines of pid's status.
func procMemory(t *testing.T, pid int) string {
	st := procStatus(t, pid)
	return fmt.Sprintf("RssAnon %.0f kB, RssFile %.0f kB, RssShmem %.0f kB", st["RssAnon"], st["RssFile"], st["RssShmem"])
}

// procStatus is the numeric fields of /proc/<pid>/status (memory in kB).
func procStatus(t *testing.T, pid int) map[string]float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	return out
}

// freeAddrs returns n distinct addresses on 127.0.0.1 that were free a
// moment ago, below the kernel's ephemeral range (testutil.FreePort): the
// fake fleet's 10,000 listeners and connections take ports in that range,
// and once took the scheduler's before it bound it.
func freeAddrs(t *testing.T, n int) []string {
	seen := map[int]bool{}
	var out []string
	for len(out) < n {
		if p := testutil.FreePort(t); !seen[p] {
			seen[p] = true
			out = append(out, fmt.Sprintf("127.0.0.1:%d", p))
		}
	}
	return out
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envDuration(t *testing.T, k string, def time.Duration) time.Duration {
	d, err := time.ParseDuration(envOr(k, def.String()))
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return d
}

func envInt(t *testing.T, k string, def int) int {
	n := envCount(t, k, def)
	if n == 0 {
		t.Fatalf("%s: want a positive count", k)
	}
	return n
}

// envCount is envInt where 0 is allowed.
func envCount(t *testing.T, k string, def int) int {
	n, err := strconv.Atoi(envOr(k, strconv.Itoa(def)))
	if err != nil || n < 0 {
		t.Fatalf("%s: want a count, 0 or more", k)
	}
	return n
}
