package gossip

// TestBenchGossipScale measures gossip at scale for `make bench`
// (scripts/bench.sh runs it with BERTH_BENCH=1): a pool of
// BERTH_BENCH_GOSSIP_MEMBERS (default 1,000) members in this one process on
// 127.0.0.1, built twice one after the other, the first shut down fully
// before the second starts:
//
//   - "berth": gossip.New with Config.Fast, as agents and the scheduler run it;
//   - "default": gossip.New without Fast, which is memberlist's
//     DefaultLANConfig with everything else equal: the same AES-256 keyring,
//     cluster label, realistic agent NodeMeta, alive and event delegates.
//
// The pool is built in batches (BERTH_BENCH_GOSSIP_BATCH, default 25), each
// waiting until every member lists every other alive. For each config it
// prints Go-benchmark-style lines ("BenchmarkGossip/<config>/<name> 1
// <value> <unit>") as soon as they are measured:
//
//   - members: the pool's size; converged_members: the largest pool that
//     converged (members when the build completed); converge: how long the
//     build took; meta_bytes: the encoded NodeMeta each member gossips;
//   - false_positives: members suspected or declared dead by anyone during a
//     steady window (BERTH_BENCH_GOSSIP_WINDOW, default 60s) in which
//     nothing was killed, with this process's CPU load as it is (all members
//     share the machine's cores); false_dead counts those declared dead.
//     Both are read from memberlist's own log lines ("Suspect X has failed",
//     "Marking X as failed");
//   - bytes_per_s_per_member: bytes each member sends per second over the
//     same window (UDP + TCP payloads after encryption, label headers
//     included, as memberlist's own udp/tcp "sent" metrics count them; IP,
//     UDP and TCP headers excluded; a member receives as much on average),
//     split into udp_ and tcp_ (push-pull) lines; cpu_cores is this process's
//     CPU use over the window;
//   - join_all/p50, /p99: a new member joins one seed; the time until every
//     member of the pool lists it alive (over BERTH_BENCH_GOSSIP_SAMPLES
//     joins, default 10);
//   - dead_all/p50, /p99: a member is shut down without leaving; the time
//     until every other member lists it dead (as many kills, one after the
//     other).
//
// It fails when the pool does not converge, or a join or a death is not
// seen by every member within its deadline; no figure is asserted. All
// members share this process's cores: a pool whose gossip needs more CPU
// than the machine has (berth's probe rate costs about 3 ms of CPU a second
// per member here) falls into a storm of false suspicions, and the build
// fails with the size that last converged. gossip.New takes no memberlist
// Transport, so bytes are counted through go-metrics' global sink, which
// memberlist reports to.

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	metrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/memberlist"

	"berth/shared/wire"
)

const (
	scaleLabel = "berth-eu-central" // a production-like cluster label
	// scaleBigPacket: UDP packets larger than this carry broadcasts (an
	// alive message with its metadata is about 300 bytes compressed and
	// encrypted; pings are 100-150 bytes, acks under 50); the pool has
	// settled after its build when few are sent.
	scaleBigPacket = 250
)

var scaleKey = []byte("bench-gossip-scale-key-32-bytes!") // AES-256, as agents use

func TestBenchGossipScale(t *testing.T) {
	if os.Getenv("BERTH_BENCH") != "1" {
		t.Skip("benchmark: run `make bench` (or BERTH_BENCH=1 go test -v -run TestBenchGossipScale ./shared/gossip/)")
	}
	n := scaleEnvInt(t, "BERTH_BENCH_GOSSIP_MEMBERS", 1000)
	samples := scaleEnvInt(t, "BERTH_BENCH_GOSSIP_SAMPLES", 10)
	batch := scaleEnvInt(t, "BERTH_BENCH_GOSSIP_BATCH", 25) // members joining at once while building
	window := 60 * time.Second
	if s := os.Getenv("BERTH_BENCH_GOSSIP_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("BERTH_BENCH_GOSSIP_WINDOW=%q: want a positive duration", s)
		}
		window = d
	}
	if n < 3 || samples < 1 || batch < 1 {
		t.Fatalf("want at least 3 members, 1 sample and batches of 1, got %d, %d and %d", n, samples, batch)
	}
	configs := []string{"berth", "default"}
	if s := os.Getenv("BERTH_BENCH_GOSSIP_CONFIGS"); s != "" { // for debugging one side
		configs = strings.Split(s, ",")
	}
	// Two sockets per member, plus streams in flight and the test's own.
	scaleRaiseNofile(t, uint64(3*(n+samples)+512))
	sink := scaleInstallSink(t)

	for _, name := range configs {
		var fast bool
		switch name {
		case "berth":
			fast = true
		case "default":
		default:
			t.Fatalf("BERTH_BENCH_GOSSIP_CONFIGS: unknown config %q (berth, default)", name)
		}
		// One after the other: the first pool is shut down (runScale's
		// deferred cleanup) before the second starts.
		t.Run(name, func(t *testing.T) { runScale(t, name, fast, n, samples, batch, window, sink) })
	}
}

// scaleBenchLine prints one benchmark line: name, 1, value, unit (the shape
// of scheduler/e2e/bench_streams_test.go's benchLine).
func scaleBenchLine(name string, value float64, unit string) {
	prec := 2
	if value >= 1000 || value == math.Trunc(value) {
		prec = 0
	}
	fmt.Printf("BenchmarkGossip/%s\t1\t%.*f %s\n", name, prec, value, unit)
}

// scaleCluster is the running pool of one configuration.
type scaleCluster struct {
	t     *testing.T
	cfg   string
	fast  bool
	flog  *scaleLog
	pools []*Pool // the live members, pools[0] the seed
	seq   int
}

// scaleMeta is what an agent of a 1,000-host fleet gossips (agent/run.go's
// nodeMeta): 237 bytes encoded.
func scaleMeta(name string, i int) wire.NodeMeta {
	return wire.NodeMeta{
		Role: wire.NodeRoleAgent, ServerID: name,
		AgentAddr: fmt.Sprintf("10.%d.%d.%d:7443", 20+i/65536, i/256%256, i%256),
		Region:    "eu-central", Architecture: "amd64",
		Labels:   map[string]string{"tier": "standard", "zone": fmt.Sprintf("fsn1-dc%02d", i%20), "rack": fmt.Sprintf("r%03d", i%400), "disk": "nvme"},
		CPUMilli: 32000, CPUUsedPct: int64(5 * (i % 20)), MemTotalMB: 131072, MemFreeMB: int64(65536 - 64*(i%100)),
		DiskTotalGB: 1920, DiskFreeGB: int64(1200 + i%500), Workspaces: i % 40,
		Version: "v1.12.3", Seq: uint64(1000 + i),
	}
}

// start creates one member (not joined).
func (c *scaleCluster) start() *Pool {
	c.t.Helper()
	name := fmt.Sprintf("ws-eu-central-fsn1-%04d", c.seq)
	// Each member has its own logger, as each agent process does: one
	// shared hclog logger would serialise every member's memberlist on its
	// mutex.
	log := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: c.flog})
	p, err := New(Config{Name: name, BindAddr: "127.0.0.1:0", Key: scaleKey, Label: scaleLabel, Fast: c.fast},
		scaleMeta(name, c.seq), log)
	if err != nil {
		c.t.Fatalf("%s: New(%s): %v", c.cfg, name, err)
	}
	c.seq++
	return p
}

// join makes p join one of seeds, trying up to five of them.
func (c *scaleCluster) join(p *Pool, rng *rand.Rand, seeds []*Pool) {
	c.t.Helper()
	var err error
	for range 5 {
		seed := seeds[rng.IntN(len(seeds))]
		if _, err = p.Join([]string{seed.LocalAddr()}); err == nil {
			return
		}
	}
	c.t.Fatalf("%s: %s cannot join: %v", c.cfg, p.name, err)
}

// shutdown stops every member at once: one after the other, a pool in a
// suspicion storm takes minutes (each memberlist's Shutdown waits for its
// packet listener, queued behind the storm's locks).
func (c *scaleCluster) shutdown() {
	var wg sync.WaitGroup
	for _, p := range c.pools {
		wg.Go(func() { p.Shutdown() })
	}
	wg.Wait()
	c.pools = nil
}

func runScale(t *testing.T, cfgName string, fast bool, n, samples, batch int, window time.Duration, sink *scaleSink) {
	flog := &scaleLog{}
	c := &scaleCluster{t: t, cfg: cfgName, fast: fast, flog: flog}
	defer func() {
		c.shutdown()
		runtime.GC()
		debug.FreeOSMemory()
	}()
	line := func(metric string, v float64, unit string) { scaleBenchLine(cfgName+"/"+metric, v, unit) }
	rng := rand.New(rand.NewPCG(13, 4))
	mc := memberlist.DefaultLANConfig()
	if fast {
		tuneFast(mc)
	}
	meta, err := scaleMeta("ws-eu-central-fsn1-0000", 0).Encode()
	if err != nil {
		t.Fatal(err)
	}
	line("meta_bytes", float64(len(meta)), "B")
	line("members", float64(n), "count")

	start, cpuStart := time.Now(), scaleCPU()
	progress := func(what string) {
		el := time.Since(start)
		t.Logf("%s: %s: %d members, fewest alive seen by one %d, %d suspicions, CPU %.2f cores, load %s (%s)", cfgName, what,
			len(c.pools), c.minAlive(), flog.total(), (scaleCPU()-cpuStart).Seconds()/el.Seconds(), scaleLoadavg(), el.Round(time.Second))
	}
	// Build: members join a member of the pool in batches, each batch
	// waiting until every member lists every other alive. The whole pool
	// shares this process's cores, and a join costs every member about
	// RetransmitMult x log10(n) gossip messages: a thousand joining at once
	// (which a fleet spread over a thousand hosts absorbs) would only measure
	// this process's overload. Members of one batch that miss each other's
	// alive broadcast learn of each other at the next push-pull, hence the
	// deadline.
	perBatch := 3*time.Minute + 2*scalePushPull(mc.PushPullInterval, n)
	converged := 1
	c.pools = append(c.pools, c.start())
	for len(c.pools) < n {
		seeds := slices.Clone(c.pools)
		for range min(batch, n-len(c.pools)) {
			p := c.start()
			c.join(p, rng, seeds)
			c.pools = append(c.pools, p)
		}
		if !scaleWait(perBatch, 250*time.Millisecond, func() bool { return c.allSeeAlive(len(c.pools)) }, func() { progress("converging: " + c.missing()) }) {
			line("converged_members", float64(converged), "count")
			t.Fatalf("%s: the pool of %d did not converge within %s of its last batch joining (%d converged): %s; %d suspicions since the start",
				cfgName, len(c.pools), perBatch, converged, c.missing(), flog.total())
		}
		converged = len(c.pools)
		if converged%(10*batch) == 0 {
			progress("building")
		}
	}
	line("converged_members", float64(converged), "count")
	line("converge", float64(time.Since(start)), "ns/op")
	progress("converged")

	// Settle: the build's broadcasts drain (each member retransmits each
	// one RetransmitMult x log10(n) times) before the steady window.
	settleStart := time.Now()
	last := sink.bigPackets.Load()
	settled := scaleWait(3*time.Minute, 5*time.Second, func() bool {
		now := sink.bigPackets.Load()
		quiet := now-last <= int64(n/20)
		last = now
		return quiet && time.Since(settleStart) >= 5*time.Second
	}, nil)
	if !settled {
		t.Logf("%s: WARNING: broadcasts still flowing after 3 min of settling; the steady window includes them", cfgName)
	}
	t.Logf("%s: settled in %s (%d suspicions during build and settling)", cfgName, time.Since(settleStart).Round(time.Second), flog.total())

	// Steady window: false positives, bytes and CPU with nothing killed.
	t.Logf("%s: steady window of %s starts, load %s", cfgName, window, scaleLoadavg())
	b0, cpu0, w0 := sink.snapshot(), scaleCPU(), time.Now()
	flog.begin()
	scaleWindow(window)
	susp, dead, refuted := flog.end()
	b1, cpu1, elapsed := sink.snapshot(), scaleCPU(), time.Since(w0)
	secs := elapsed.Seconds()
	udp, tcp := float64(b1.udp-b0.udp)/secs/float64(n), float64(b1.tcp-b0.tcp)/secs/float64(n)
	cores := (cpu1 - cpu0).Seconds() / secs
	line("false_positives", float64(len(susp)), "count")
	line("false_dead", float64(len(dead)), "count")
	line("bytes_per_s_per_member", udp+tcp, "B/s")
	line("udp_bytes_per_s_per_member", udp, "B/s")
	line("tcp_bytes_per_s_per_member", tcp, "B/s")
	line("cpu_cores", cores, "cores")
	t.Logf("%s: steady %s: %d members suspected (%d declared dead, %d refutations), %.0f B/s per member (udp %.0f, tcp %.0f), CPU %.2f cores, load %s",
		cfgName, elapsed.Round(time.Millisecond), len(susp), len(dead), refuted, udp+tcp, udp, tcp, cores, scaleLoadavg())
	if len(susp) > 0 {
		t.Logf("%s: suspected in the steady window: %s", cfgName, scaleSample(susp))
	}

	// Joins: a new member joins the seed; every member must list it alive.
	joinDeadline := time.Minute
	var joins []time.Duration
	for i := range samples {
		p := c.start()
		t0 := time.Now()
		c.join(p, rng, c.pools[:1])
		d, missing := scaleSeenBy(c.pools, p.name, t0, joinDeadline, func(m Member, ok bool) bool { return ok && m.State == StateAlive })
		c.pools = append(c.pools, p)
		if missing > 0 {
			t.Fatalf("%s: join %d: %s not listed alive by %d of %d members within %s", cfgName, i+1, p.name, missing, len(c.pools)-1, joinDeadline)
		}
		joins = append(joins, d)
	}
	line("join_all/p50", float64(scalePercentile(joins, 50)), "ns/op")
	line("join_all/p99", float64(scalePercentile(joins, 99)), "ns/op")
	t.Logf("%s: joins seen by all: %s", cfgName, scaleDurations(joins))

	// Kills: a member stops without leaving; every other one must list it
	// dead. The deadline is twice memberlist's longest suspicion timeout
	// (no confirmations) for this pool size, plus 30 s.
	susMax := time.Duration(float64(mc.SuspicionMaxTimeoutMult*mc.SuspicionMult) * math.Max(1, math.Log10(float64(len(c.pools)))) * float64(mc.ProbeInterval))
	deadDeadline := 2*susMax + 30*time.Second
	var deads []time.Duration
	for i := range samples {
		k := 1 + rng.IntN(len(c.pools)-1) // never the seed
		victim := c.pools[k]
		c.pools = slices.Delete(c.pools, k, k+1)
		t0 := time.Now()
		victim.Shutdown()
		d, missing := scaleSeenBy(c.pools, victim.name, t0, deadDeadline, func(m Member, ok bool) bool {
			return !ok || m.State == StateDead || m.State == StateLeft
		})
		if missing > 0 {
			t.Fatalf("%s: kill %d: %s not listed dead by %d of %d members within %s", cfgName, i+1, victim.name, missing, len(c.pools), deadDeadline)
		}
		deads = append(deads, d)
	}
	line("dead_all/p50", float64(scalePercentile(deads, 50)), "ns/op")
	line("dead_all/p99", float64(scalePercentile(deads, 99)), "ns/op")
	t.Logf("%s: deaths seen by all: %s (deadline %s)", cfgName, scaleDurations(deads), deadDeadline)
}

// missing describes the member that sees the fewest alive, and whom it
// misses (at most five).
func (c *scaleCluster) missing() string {
	var worst *Pool
	for _, p := range c.pools {
		if worst == nil || p.NumAlive() < worst.NumAlive() {
			worst = p
		}
	}
	state := map[string]string{}
	for _, m := range worst.Members() {
		state[m.Name] = m.State
	}
	var miss []string
	for _, p := range c.pools {
		if s := state[p.name]; s != StateAlive && s != StateSuspect {
			miss = append(miss, fmt.Sprintf("%s (%s)", p.name, cmp.Or(s, "unknown")))
		}
	}
	more := ""
	if len(miss) > 5 {
		more, miss = fmt.Sprintf(" and %d more", len(miss)-5), miss[:5]
	}
	return fmt.Sprintf("%s sees %d alive, misses %s%s", worst.name, worst.NumAlive(), strings.Join(miss, " "), more)
}

// allSeeAlive: every member counts want members alive (itself included).
func (c *scaleCluster) allSeeAlive(want int) bool {
	for _, p := range c.pools {
		if p.NumAlive() != want {
			return false
		}
	}
	return true
}

func (c *scaleCluster) minAlive() int {
	least := math.MaxInt
	for _, p := range c.pools {
		least = min(least, p.NumAlive())
	}
	return least
}

// scaleSeenBy polls every 10 ms until seen(member view of name) holds for
// every pool, and returns the time from t0 to the poll that completed it;
// after deadline it returns how many pools still do not.
func scaleSeenBy(pools []*Pool, name string, t0 time.Time, deadline time.Duration, seen func(Member, bool) bool) (time.Duration, int) {
	pending := slices.Clone(pools)
	for {
		pending = slices.DeleteFunc(pending, func(p *Pool) bool {
			p.mu.Lock()
			m, ok := p.members[name]
			p.mu.Unlock()
			return seen(m, ok)
		})
		now := time.Now()
		if len(pending) == 0 {
			return now.Sub(t0), 0
		}
		if now.Sub(t0) > deadline {
			return 0, len(pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scaleWait polls cond every step until it holds (true) or within passes
// (false); progress, when set, runs every 15 s.
func scaleWait(within, step time.Duration, cond func() bool, progress func()) bool {
	begin := time.Now()
	deadline, report := begin.Add(within), begin.Add(15*time.Second)
	for {
		if cond() {
			return true
		}
		now := time.Now()
		if now.After(deadline) {
			return false
		}
		if progress != nil && now.After(report) {
			progress()
			report = now.Add(15 * time.Second)
		}
		time.Sleep(step)
	}
}

// scaleWindow is the measurement window: its length is the measurement, not a
// synchronisation.
func scaleWindow(d time.Duration) { <-time.After(d) }

func scalePercentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1 // nearest rank
	return s[max(0, i)]
}

func scaleDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

func scaleSample(names map[string]int) string {
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 20 {
		keys = append(keys[:20], fmt.Sprintf("... (%d more)", len(keys)-20))
	}
	return strings.Join(keys, " ")
}

// scaleLog reads memberlist's log lines (level info and above) of every
// member: "Suspect X has failed" (a probe of X found no ack) and "Marking X
// as failed" (a suspicion timed out), counted per X while the window is open.
type scaleLog struct {
	mu        sync.Mutex
	counting  bool
	all       int
	suspected map[string]int
	dead      map[string]int
	refuted   int
}

func (l *scaleLog) Write(b []byte) (int, error) {
	s := string(b)
	name := func(before, after string) string {
		i := strings.Index(s, before)
		if i < 0 {
			return ""
		}
		rest := s[i+len(before):]
		j := strings.Index(rest, after)
		if j <= 0 {
			return ""
		}
		return rest[:j]
	}
	susp, dead := name("Suspect ", " has failed"), name("Marking ", " as failed")
	refute := strings.Contains(s, "Refuting a suspect message") || strings.Contains(s, "Refuting a dead message")
	if susp == "" && dead == "" && !refute {
		return len(b), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if susp != "" || dead != "" {
		l.all++
	}
	if !l.counting {
		return len(b), nil
	}
	if susp != "" {
		l.suspected[susp]++
	}
	if dead != "" {
		l.suspected[dead]++
		l.dead[dead]++
	}
	if refute {
		l.refuted++
	}
	return len(b), nil
}

func (l *scaleLog) total() int { l.mu.Lock(); defer l.mu.Unlock(); return l.all }

func (l *scaleLog) begin() {
	l.mu.Lock()
	l.counting, l.suspected, l.dead, l.refuted = true, map[string]int{}, map[string]int{}, 0
	l.mu.Unlock()
}

func (l *scaleLog) end() (suspected, dead map[string]int, refuted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counting = false
	return l.suspected, l.dead, l.refuted
}

// scaleSink is a go-metrics sink counting what memberlist sends: UDP and
// TCP payload bytes (after encryption) and, since the label header is added
// below the metric, one header per packet and per outgoing stream.
type scaleSink struct {
	metrics.BlackholeSink       // gauges, keys and samples are dropped
	label                 int64 // label header bytes
	udpBytes, udpPackets  atomic.Int64
	tcpBytes, tcpConnects atomic.Int64
	bigPackets            atomic.Int64
}

type scaleBytes struct{ udp, tcp int64 }

func (s *scaleSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

func (s *scaleSink) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	if len(key) < 3 || key[len(key)-3] != "memberlist" {
		return
	}
	switch key[len(key)-2] + "." + key[len(key)-1] {
	case "udp.sent":
		s.udpBytes.Add(int64(val))
		s.udpPackets.Add(1)
		if val > scaleBigPacket {
			s.bigPackets.Add(1)
		}
	case "tcp.sent":
		s.tcpBytes.Add(int64(val))
	case "tcp.connect":
		s.tcpConnects.Add(1)
	}
}

func (s *scaleSink) snapshot() scaleBytes {
	return scaleBytes{
		udp: s.udpBytes.Load() + s.udpPackets.Load()*s.label,
		tcp: s.tcpBytes.Load() + s.tcpConnects.Load()*s.label,
	}
}

// scaleInstallSink makes memberlist's metrics (go-metrics' global) report
// to a scaleSink for the test's duration.
func scaleInstallSink(t *testing.T) *scaleSink {
	t.Helper()
	conf := metrics.DefaultConfig("")
	conf.EnableHostname, conf.EnableHostnameLabel, conf.EnableRuntimeMetrics = false, false, false
	sink := &scaleSink{label: int64(2 + len(scaleLabel))}
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		t.Fatalf("metrics sink: %v", err)
	}
	t.Cleanup(func() { _, _ = metrics.NewGlobal(conf, &metrics.BlackholeSink{}) })
	return sink
}

// scaleCPU is this process's user + system CPU time.
func scaleCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scaleRaiseNofile raises RLIMIT_NOFILE to need, or skips the test.
func scaleRaiseNofile(t *testing.T, need uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("gossip scale bench: cannot read RLIMIT_NOFILE: %v", err)
	}
	if rl.Cur >= need {
		return
	}
	want := syscall.Rlimit{Cur: need, Max: max(rl.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Skipf("gossip scale bench: needs %d open files, RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %v (ulimit -n %d, or fewer BERTH_BENCH_GOSSIP_MEMBERS)",
			need, rl.Cur, rl.Max, err, need)
	}
}

func scaleEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return cmp.Or(v, def)
}

// scaleLoadavg is the machine's 1-minute load average.
func scaleLoadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// scalePushPull is memberlist's push-pull interval for n members (its
// pushPullScale: one more interval for each doubling beyond 32).
func scalePushPull(interval time.Duration, n int) time.Duration {
	if n <= 32 {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(32))+1) * interval
}
