package e2e

// Measurements of the interactive streams for `make bench` (scripts/bench.sh
// runs them with BERTH_E2E=1 BERTH_BENCH=1). They print Go-benchmark-style
// lines ("BenchmarkStreams/<name> <n> <value> <unit>"), each next to its
// baseline taken in the same run, and fail only when a measurement cannot
// be taken; no figure is asserted.
//
//   - TestBenchInteractive, on the compose cluster's scheduler, measures from
//     inside the workspace's DinD host with tools/streambench (built static,
//     copied in), so that both sides of each ratio run the same client in
//     the same place:
//     keystroke -> echo (a letter every 50 ms, a typist's pace: the terminal
//     batches output that follows a frame within 16 ms) through the
//     terminal WebSocket (client -> scheduler -> agent over mTLS -> TTY exec
//     -> tmux client -> tmux -> bash) against a TTY exec on the host's own
//     Docker socket running the same `tmux attach-session` with the agent's
//     exec options, on the same session: the difference is exactly the
//     scheduler and agent hops. And the preview proxy (client -> scheduler
//     -> agent -> app) against requests straight to the app's bridge
//     address, the hop the agent itself makes: a 100 MB body, /json
//     sequentially and with 16 connections.
//   - TestBenchTerminalsHeld opens 200 terminals, holds them for a minute and
//     reads the scheduler's and the agents' RSS and CPU from their
//     Prometheus process metrics, before, during and after. It runs its own
//     scheduler (startScheduler) on the compose agents, so that the seven
//     workspaces it needs (32 terminals per workspace at most) take no room
//     from the shared cluster's scheduler and no one else's traffic is in
//     the scheduler's figures.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func needBench(t *testing.T) {
	t.Helper()
	needCluster(t)
	if os.Getenv("BERTH_BENCH") != "1" {
		t.Skip("benchmark: run `make bench` (or BERTH_E2E=1 BERTH_BENCH=1 with `make run` up)")
	}
}

// The test-only workspace image with the e2e test app (scheduler/e2e/testapp),
// and the port the benchmarks run the app on.
const (
	benchTestImage = "berth/workspace-test:dev"
	benchAppPort   = 3000
)

// benchLine prints one benchmark line: name, count, value, unit.
func benchLine(name string, n int, value float64, unit string) {
	prec := 2
	if value >= 1000 {
		prec = 0
	}
	fmt.Printf("BenchmarkStreams/%s\t%d\t%.*f %s\n", name, n, prec, value, unit)
}

// benchSeries is one series of tools/streambench's JSON.
type benchSeries struct {
	Name   string  `json:"name"`
	N      int     `json:"n"`
	P50    int64   `json:"p50_ns"`
	P99    int64   `json:"p99_ns"`
	Mean   int64   `json:"mean_ns"`
	Max    int64   `json:"max_ns"`
	MBps   float64 `json:"mb_per_s"`
	RPS    float64 `json:"req_per_s"`
	Bytes  int64   `json:"bytes"`
	Errors int     `json:"errors"`
	Conc   int     `json:"concurrency"`
}

// benchClient builds tools/streambench static into the test's temporary
// directory (the Go build cache makes the second build instant).
func benchClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streambench")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./tools/streambench")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./tools/streambench: %v\n%s", err, out)
	}
	return bin
}

// benchInHost copies streambench into host's container and runs it there with
// args; it returns the series it printed (its progress goes to the log).
func benchInHost(t *testing.T, host string, args ...string) map[string]benchSeries {
	t.Helper()
	ctr := hostContainer(t, host)
	const inHost = "/tmp/berth-streambench"
	docker(t, "cp", benchClient(t), ctr+":"+inHost)
	t.Cleanup(func() { _ = exec.Command("docker", "exec", ctr, "rm", "-f", inHost).Run() })
	cmd := exec.Command("docker", append([]string{"exec", ctr, inHost}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("streambench %s on %s:\n%s", args[0], host, stderr.String())
	if err != nil {
		t.Fatalf("streambench %s on %s: %v", args[0], host, err)
	}
	var stats []benchSeries
	if err := json.Unmarshal(out, &stats); err != nil {
		t.Fatalf("streambench output: %v: %s", err, out)
	}
	m := map[string]benchSeries{}
	for _, s := range stats {
		m[s.Name] = s
	}
	return m
}

// One workspace of the test image on the compose cluster: the terminal's
// keystroke echo, then the preview proxy, each against its baseline.
func TestBenchInteractive(t *testing.T) {
	needBench(t)
	user := "bench-streams"
	k := composeAPI().as(user)
	id := uniqueID("bench-streams")
	ws := k.mustCreate(t, "s-"+id, id, map[string]any{"tier": "starter", "repos": []string{}, "base_image": benchTestImage})
	wsURL := "ws://scheduler:3003" // the compose scheduler, as the host sees it
	httpURL := "http://scheduler:3003"

	t.Run("terminal_echo", func(t *testing.T) {
		session := "bench-" + runStamp
		n := envInt("BERTH_BENCH_KEYSTROKES", 200)
		stats := benchInHost(t, ws.ServerID, "tty",
			"-berth", wsURL+"/terminal/"+id+"?session_id="+session+"&shell=bash",
			"-token", serviceToken(), "-container", ws.ContainerID, "-session", "podex-"+session,
			"-n", strconv.Itoa(n), "-block", "50")
		for _, name := range []string{"berth", "docker_exec"} {
			s := stats[name]
			if s.N != n {
				t.Fatalf("%s: %d keystrokes measured, want %d", name, s.N, n)
			}
			benchLine("terminal_echo/"+name+"/p50", s.N, float64(s.P50), "ns/op")
			benchLine("terminal_echo/"+name+"/p99", s.N, float64(s.P99), "ns/op")
		}
	})

	t.Run("preview_proxy", func(t *testing.T) {
		// The test app, as dev, in the background; ready when the proxy
		// reaches it.
		res := k.exec(t, id, map[string]any{"command": fmt.Sprintf(
			"setsid nohup testapp --port %d >/tmp/testapp.log 2>&1 </dev/null & echo started", benchAppPort)})
		if res.ExitCode != 0 {
			t.Fatalf("start testapp: %+v", res)
		}
		proxyPath := fmt.Sprintf("/preview/%s/proxy/%d", id, benchAppPort)
		probe := composeAPI().as(user)
		waitFor(t, 30*time.Second, "the test app through the preview proxy", func() (bool, string) {
			r, err := probe.tryDo(http.MethodGet, proxyPath+"/json", nil)
			if err != nil {
				return false, err.Error()
			}
			return r.status == http.StatusOK, r.String()
		})
		ip := innerDocker(t, ws.ServerID, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", ws.ContainerID)
		mb := envInt("BERTH_BENCH_BIG_MB", 100)
		stats := benchInHost(t, ws.ServerID, "http",
			"-berth", httpURL+proxyPath, "-direct", fmt.Sprintf("http://%s:%d", ip, benchAppPort),
			"-token", serviceToken(), "-big", fmt.Sprintf("/big?mb=%d", mb), "-reps", "5",
			"-small", "/json", "-n", "2000", "-c", "16", "-d", "5s")
		for _, name := range []string{"berth", "direct"} {
			big, seq, rps := stats["big/"+name], stats["small_seq/"+name], stats["small_rps/"+name]
			if big.MBps <= 0 || seq.N == 0 || rps.RPS <= 0 {
				t.Fatalf("%s: missing figures: %+v %+v %+v", name, big, seq, rps)
			}
			benchLine("preview_big/"+name, big.N, big.MBps, "MB/s")
			benchLine("preview_json_seq/"+name+"/p50", seq.N, float64(seq.P50), "ns/op")
			benchLine("preview_json_seq/"+name+"/p99", seq.N, float64(seq.P99), "ns/op")
			benchLine("preview_json_rps/"+name, rps.N, rps.RPS, "req/s")
			benchLine("preview_json_rps/"+name+"/p99", rps.N, float64(rps.P99), "ns/op")
			if rps.Errors > 0 {
				t.Errorf("%s: %d failed requests in the requests/s run", name, rps.Errors)
			}
		}
	})
}

// benchProc are a process's Prometheus process metrics.
type benchProc struct{ rss, cpu float64 } // bytes, CPU seconds

// benchProcMetrics reads process_resident_memory_bytes and
// process_cpu_seconds_total from a Prometheus text exposition.
func benchProcMetrics(text string) (benchProc, error) {
	var p benchProc
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "process_resident_memory_bytes":
			dst = &p.rss
		case "process_cpu_seconds_total":
			dst = &p.cpu
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return p, fmt.Errorf("%s: %w", name, err)
		}
		*dst = v
		seen++
	}
	if seen != 2 {
		return p, fmt.Errorf("no process metrics in the exposition")
	}
	return p, nil
}

// benchMetric is the value of the sample `series` (name with labels, as
// exposed) in a Prometheus text exposition, or -1.
func benchMetric(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// 200 terminals over seven workspaces, held open for a minute, then closed:
// the scheduler's and the agents' memory and CPU.
func TestBenchTerminalsHeld(t *testing.T) {
	needBench(t)
	total := envInt("BERTH_BENCH_TERMINALS", 200)
	hold := time.Duration(envInt("BERTH_BENCH_HOLD_SECONDS", 60)) * time.Second
	const perWorkspace = 30 // under the scheduler's cap of 32 per workspace
	nws := (total + perWorkspace - 1) / perWorkspace

	room := seed{CPU: 64, MemoryMB: 1 << 20, DiskGB: 10000, Region: "local"}
	s := startScheduler(t, "spread", map[string]seed{hosts[0].id: room, hosts[1].id: room})
	k := s.api.as("bench-held")
	ids := make([]string, nws)
	for i := range ids {
		ids[i] = uniqueID("bench-held")
		k.mustCreate(t, "s-"+ids[i], ids[i], nil)
	}
	ags := agents(t)
	ctx := ctxT(t, 10*time.Minute)

	// sample reads the process metrics of the scheduler and of each agent,
	// and the agents' open TTY streams.
	type sample struct {
		at      time.Time
		sched   benchProc
		agents  map[string]benchProc
		ttyOpen float64
	}
	take := func() sample {
		t.Helper()
		sm := sample{at: time.Now(), agents: map[string]benchProc{}}
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatalf("scheduler /metrics: %v", err)
		}
		var b strings.Builder
		_, err = bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("scheduler /metrics: %v", err)
		}
		if sm.sched, err = benchProcMetrics(b.String()); err != nil {
			t.Fatalf("scheduler /metrics: %v", err)
		}
		for _, h := range hosts {
			text, err := ags[h.id].Metrics(ctx)
			if err != nil {
				t.Fatalf("%s /metrics: %v", h.id, err)
			}
			if sm.agents[h.id], err = benchProcMetrics(text); err != nil {
				t.Fatalf("%s /metrics: %v", h.id, err)
			}
			sm.ttyOpen += max(0, benchMetric(text, `berth_agent_streams_open{kind="tty"}`))
		}
		return sm
	}
	agentSum := func(sm sample) benchProc {
		var p benchProc
		for _, a := range sm.agents {
			p.rss += a.rss
			p.cpu += a.cpu
		}
		return p
	}
	// cores is the CPU used between two samples, in cores.
	cores := func(a, b sample, f func(sample) benchProc) float64 {
		return (f(b).cpu - f(a).cpu) / b.at.Sub(a.at).Seconds()
	}
	schedOf := func(sm sample) benchProc { return sm.sched }

	// Idle: the workspaces run, no terminal is open.
	time.Sleep(5 * time.Second)
	idle0 := take()
	time.Sleep(15 * time.Second)
	idle1 := take()

	// Open them, at most 10 at a time; each must show its prompt.
	type heldTerm struct {
		conn   *websocket.Conn
		output chan []byte
	}
	terms := make([]*heldTerm, total)
	wsBase := "ws" + strings.TrimPrefix(s.url, "http")
	openStart := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 10)
	for i := range total {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			url := fmt.Sprintf("%s/terminal/%s?session_id=held-%d&shell=bash", wsBase, ids[i%nws], i)
			dctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{
				HTTPHeader: http.Header{"X-Internal-Service-Token": {s.api.token}},
			})
			if resp != nil && resp.Body != nil {
				resp.Body.Close()
			}
			if err != nil {
				failed.Add(1)
				t.Errorf("terminal %d: %v", i, err)
				return
			}
			conn.SetReadLimit(1 << 20)
			ht := &heldTerm{conn: conn, output: make(chan []byte, 64)}
			terms[i] = ht
			go func() { // read everything, so output never backs up
				defer close(ht.output)
				for {
					_, data, err := conn.Read(ctx)
					if err != nil {
						return
					}
					select {
					case ht.output <- data:
					default:
					}
				}
			}()
			select {
			case <-ht.output:
			case <-dctx.Done():
				failed.Add(1)
				t.Errorf("terminal %d: no output within a minute", i)
			}
		}()
	}
	wg.Wait()
	opened := time.Since(openStart)
	defer func() {
		for _, ht := range terms {
			if ht != nil {
				_ = ht.conn.Close(websocket.StatusNormalClosure, "")
			}
		}
	}()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d terminals did not open", failed.Load(), total)
	}
	t.Logf("%d terminals open on %d workspaces in %s", total, nws, opened.Round(time.Millisecond))

	// Hold: sample every 5 s; the peak RSS and the CPU over the hold.
	time.Sleep(5 * time.Second)
	held0 := take()
	if held0.ttyOpen < float64(total) {
		t.Errorf("agents report %g open TTY streams, want at least %d", held0.ttyOpen, total)
	}
	peakSched, peakAgents := held0.sched.rss, agentSum(held0).rss
	held1 := held0
	for end := held0.at.Add(hold); time.Now().Before(end); {
		time.Sleep(min(5*time.Second, time.Until(end)))
		held1 = take()
		peakSched, peakAgents = max(peakSched, held1.sched.rss), max(peakAgents, agentSum(held1).rss)
	}

	// Every terminal still answers: one keystroke each, echoed.
	alive := 0
	for _, ht := range terms {
		for len(ht.output) > 0 { // what came during the hold
			<-ht.output
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if ht.conn.Write(wctx, websocket.MessageText, []byte("x")) == nil {
		wait:
			for {
				select {
				case data := <-ht.output:
					if strings.Contains(string(data), "x") {
						alive++
						break wait
					}
				case <-wctx.Done():
					break wait
				}
			}
		}
		cancel()
	}
	if alive != total {
		t.Errorf("%d of %d terminals echoed a keystroke after the hold", alive, total)
	}

	mb := func(b float64) float64 { return b / (1 << 20) }
	report := func(who string, f func(sample) benchProc, peakRSS float64) {
		benchLine("held/"+who+"/rss_idle", 1, mb(f(idle1).rss), "MB")
		benchLine("held/"+who+"/rss_held", total, mb(peakRSS), "MB")
		benchLine("held/"+who+"/kb_per_terminal", total, (peakRSS-f(idle1).rss)/1024/float64(total), "KB")
		benchLine("held/"+who+"/cpu_idle", 1, 100*cores(idle0, idle1, f), "%core")
		benchLine("held/"+who+"/cpu_held", total, 100*cores(held0, held1, f), "%core")
	}
	report("scheduler", schedOf, peakSched)
	report("agents", agentSum, peakAgents)
	benchLine("held/open_all", total, float64(opened.Nanoseconds()), "ns/op")
	benchLine("held/hold_seconds", total, held1.at.Sub(held0.at).Seconds(), "s")

	// Close them; the agents' streams end.
	for i, ht := range terms {
		_ = ht.conn.Close(websocket.StatusNormalClosure, "")
		terms[i] = nil
	}
	waitFor(t, 30*time.Second, "the agents' TTY streams closed", func() (bool, string) {
		sm := take()
		return sm.ttyOpen <= idle1.ttyOpen, fmt.Sprintf("%g open, %g before", sm.ttyOpen, idle1.ttyOpen)
	})
	after := take()
	benchLine("held/scheduler/rss_after_close", 1, mb(after.sched.rss), "MB")
	benchLine("held/agents/rss_after_close", 1, mb(agentSum(after).rss), "MB")
}
