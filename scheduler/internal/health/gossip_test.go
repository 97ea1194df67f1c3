package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// fakePool is a gossip view the test writes.
type fakePool struct {
	mu      sync.Mutex
	members map[string]gossip.Member
	events  chan gossip.Event
}

func newFakePool() *fakePool {
	return &fakePool{members: map[string]gossip.Member{}, events: make(chan gossip.Event, 64)}
}

func (p *fakePool) Members() []gossip.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []gossip.Member
	for _, m := range p.members {
		out = append(out, m)
	}
	return out
}

func (p *fakePool) Subscribe() <-chan gossip.Event { return p.events }

// set announces m (state and metadata).
func (p *fakePool) set(m gossip.Member) {
	p.mu.Lock()
	p.members[m.Name] = m
	p.mu.Unlock()
	p.events <- gossip.Event{Member: m, Kind: "update"}
}

// countedAgent is an agent whose health probes are counted and whose
// requests are timed.
type countedAgent struct {
	*agenttest.Agent
	probes  atomic.Int64
	longest atomic.Int64 // ns of the longest request that ended
	open    atomic.Int64 // requests being served
}

func startCounted(t *testing.T, pki *testutil.PKI, id string) *countedAgent {
	a := &countedAgent{Agent: agenttest.Start(t, pki, id)}
	a.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == wire.PathHealth {
				a.probes.Add(1)
			}
			a.open.Add(1)
			start := time.Now()
			defer func() {
				a.open.Add(-1)
				if d := int64(time.Since(start)); d > a.longest.Load() {
					a.longest.Store(d)
				}
			}()
			next.ServeHTTP(w, r)
		})
	})
	return a
}

func serverAddr(id, addr string) registry.ServerAddr {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return registry.ServerAddr{ID: id, IPAddress: host, AgentPort: p}
}

func agentAddr(s registry.Server) string {
	return net.JoinHostPort(s.IPAddress, strconv.Itoa(s.AgentPort))
}

func testDialer(t *testing.T, pki *testutil.PKI) *agentclient.Dialer {
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	d, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runTracker runs tr (and w, if not nil) until the test ends.
func runTracker(t *testing.T, tr *Tracker, w *Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(fn func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = fn(ctx) }()
	}
	if w != nil {
		tr.FollowEvents(w)
		run(w.Run)
	}
	run(tr.Run)
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func agentMeta(id string, seq uint64) wire.NodeMeta {
	return wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: id, CPUMilli: 4000, MemTotalMB: 8192, MemFreeMB: 4096, Seq: seq}
}

func fastOptions() Options {
	o := DefaultOptions()
	o.ProbeInterval, o.SlowProbeInterval, o.ListInterval, o.ResyncInterval = 50*time.Millisecond, time.Hour, 50*time.Millisecond, time.Hour
	return o
}

// probesIn counts a's probes during d.
func probesIn(a *countedAgent, d time.Duration) int64 {
	before := a.probes.Load()
	time.Sleep(d)
	return a.probes.Load() - before
}

// While gossip vouches for a server (an alive member with good metadata)
// its agent is probed every SlowProbeInterval, not every ProbeInterval; a
// server gossip knows nothing of, or has doubts about, is probed every
// ProbeInterval; one that comes back is probed at once.
func TestProbesFollowGossip(t *testing.T) {
	pki := testutil.NewPKI(t)
	member, stranger := startCounted(t, pki, "ws-1"), startCounted(t, pki, "ws-2")
	pool := newFakePool()
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: agentMeta("ws-1", 1)})
	reg := &memRegistry{servers: []registry.ServerAddr{serverAddr("ws-1", member.Addr()), serverAddr("ws-2", stranger.Addr())},
		changes: make(chan string, 64)}
	go func() {
		for range reg.changes {
		}
	}()
	tr := New(reg, testDialer(t, pki), pool, agentAddr, fastOptions(), hclog.NewNullLogger())
	runTracker(t, tr, nil)
	testutil.Eventually(t, 5*time.Second, "both healthy", func() bool {
		h1, _ := tr.Health("ws-1")
		h2, _ := tr.Health("ws-2")
		return h1 == fleet.HealthHealthy && h2 == fleet.HealthHealthy
	})

	if n := probesIn(member, 600*time.Millisecond); n > 1 {
		t.Errorf("a member gossip vouches for: %d probes in 600 ms, want at most 1 (slow interval 1h)", n)
	}
	if n := probesIn(stranger, 600*time.Millisecond); n < 5 {
		t.Errorf("a server gossip does not know: %d probes in 600 ms, want about 12 (every 50 ms)", n)
	}
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateSuspect, Meta: agentMeta("ws-1", 1)})
	if n := probesIn(member, 600*time.Millisecond); n < 5 {
		t.Errorf("a suspect member: %d probes in 600 ms, want about 12", n)
	}
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: agentMeta("ws-1", 1)})
	time.Sleep(100 * time.Millisecond) // the probe on its return, then slow again
	if n := probesIn(member, 600*time.Millisecond); n > 1 {
		t.Errorf("back alive: %d probes in 600 ms, want at most 1", n)
	}
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, MetaErr: "decode node meta: bad", Meta: agentMeta("ws-1", 2)})
	if n := probesIn(member, 600*time.Millisecond); n < 5 {
		t.Errorf("a member whose metadata does not decode: %d probes in 600 ms, want about 12", n)
	}
	if h, _ := tr.Health("ws-1"); h != fleet.HealthHealthy {
		t.Errorf("ws-1 is %s, want healthy throughout (its probes succeed)", h)
	}
}

// An agent whose dockerd stops answering says so in its gossip metadata:
// the server is unhealthy without waiting for a probe, and healthy again
// when the agent says dockerd is back. A resync repeating metadata that
// was already applied does not undo a newer probe's answer.
func TestGossipDockerDown(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := startCounted(t, pki, "ws-1")
	pool := newFakePool()
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: agentMeta("ws-1", 1)})
	reg := &memRegistry{servers: []registry.ServerAddr{serverAddr("ws-1", a.Addr())}, changes: make(chan string, 64)}
	tr := New(reg, testDialer(t, pki), pool, agentAddr, fastOptions(), hclog.NewNullLogger())
	runTracker(t, tr, nil)
	expect := func(want string, reason string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case got := <-reg.changes:
				if got == "ws-1="+want {
					if h, why := tr.decideLockedFor("ws-1"); reason != "" && !strings.Contains(why, reason) {
						t.Errorf("%s: reason %q, want it to mention %q", h, why, reason)
					}
					return
				}
			case <-deadline:
				t.Fatalf("no transition to %s", want)
			}
		}
	}
	expect("healthy", "")
	probes := a.probes.Load()
	down := agentMeta("ws-1", 2)
	down.DockerDown = true
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: down})
	expect("unhealthy", "dockerd")
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: agentMeta("ws-1", 3)})
	expect("healthy", "")
	if n := a.probes.Load() - probes; n != 0 {
		t.Errorf("%d probes while gossip said it all, want none", n)
	}

	// A probe's answer is newer than metadata already applied.
	tr.mu.Lock()
	s := tr.states["ws-1"]
	s.dockerOK, s.dockerErr, s.dockerGossip = false, "ping: connection refused", false
	tr.evaluateLocked("ws-1", s)
	tr.mu.Unlock()
	expect("unhealthy", "connection refused")
	tr.resync()
	if h, _ := tr.Health("ws-1"); h != fleet.HealthUnhealthy {
		t.Errorf("after a resync of old metadata: %s, want the probe's unhealthy", h)
	}
}

// decideLockedFor is the rules' verdict on id now.
func (t *Tracker) decideLockedFor(id string) (fleet.Health, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.decideLocked(t.states[id])
}

// Servers gossip vouches for are probed every SlowProbeInterval, or further
// apart in a large fleet so that those probes stay at ProbeRate a second;
// from ownConnectionFrom apart, each probe dials its own connection.
func TestSlowProbesScaleWithTheFleet(t *testing.T) {
	tests := []struct {
		servers  int
		want     time.Duration
		wantOwn  bool
		vouched  bool
		wantNext time.Duration // the interval of a vouched, healthy server
	}{
		{servers: 2, want: 5 * time.Second, vouched: true, wantNext: 5 * time.Second},
		{servers: 250, want: 5 * time.Second, vouched: true, wantNext: 5 * time.Second},
		{servers: 499, want: 9980 * time.Millisecond, vouched: true, wantNext: 9980 * time.Millisecond},
		{servers: 500, want: 10 * time.Second, wantOwn: true, vouched: true, wantNext: 10 * time.Second},
		{servers: 1000, want: 20 * time.Second, wantOwn: true, vouched: true, wantNext: 20 * time.Second},
		{servers: 10000, want: 200 * time.Second, wantOwn: true, vouched: true, wantNext: 200 * time.Second},
		// Probed every second (gossip does not vouch for it): kept-alive
		// while fewer than maxKeptProbes servers hold such a connection.
		{servers: 10000, want: 200 * time.Second, wantOwn: false, vouched: false, wantNext: time.Second},
		{servers: 499, want: 9980 * time.Millisecond, vouched: false, wantNext: time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d servers, vouched %v", tt.servers, tt.vouched), func(t *testing.T) {
			tr := New(nil, nil, newFakePool(), nil, DefaultOptions(), hclog.NewNullLogger())
			for i := range tt.servers {
				tr.stateLocked(fmt.Sprint(i))
			}
			s := &serverState{probed: true, dockerOK: true, metaOK: true, gossipState: gossip.StateAlive}
			if !tt.vouched {
				s.gossipState = gossip.StateSuspect
			}
			if got := tr.slowIntervalLocked(); got != tt.want {
				t.Errorf("slow interval %s, want %s", got, tt.want)
			}
			if got := tr.intervalLocked(s); got != tt.wantNext {
				t.Errorf("interval %s, want %s", got, tt.wantNext)
			}
			now, kept := time.Now(), -1 // counted by the call
			if got := tr.ownConnectionLocked(s, now, &kept); got != tt.wantOwn {
				t.Errorf("own connection %v, want %v", got, tt.wantOwn)
			}
			if !tt.vouched && tt.servers >= 500 {
				// Every kept-alive slot taken: a server without one of its
				// own dials its own connection, one that holds one keeps it.
				full := maxKeptProbes
				if got := tr.ownConnectionLocked(&serverState{}, now, &full); !got {
					t.Error("no kept-alive slot left: got a kept-alive probe, want a connection of its own")
				}
				if got := tr.ownConnectionLocked(s, now, &full); got {
					t.Error("a server holding its kept-alive connection: got a connection of its own, want the kept one")
				}
				if kept != 1 || full != maxKeptProbes {
					t.Errorf("kept-alive count %d and %d, want 1 (the first server) and %d (no new one)", kept, full, maxKeptProbes)
				}
			}
		})
	}
}
