package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// Options tune the tracker.
type Options struct {
	// ProbeInterval is the mean time between probes of a server gossip says
	// nothing fresh about (±20 % jitter): gossip is off, the agent is not
	// an alive member, or its last probe failed.
	ProbeInterval time.Duration
	// SlowProbeInterval is the shortest mean time between probes of a
	// server gossip vouches for (±20 %): they check what gossip cannot (the
	// mTLS API answers, with the certificate of its server id). Past
	// SlowProbeInterval × ProbeRate servers, the interval grows with the
	// fleet so that these probes stay at ProbeRate a second in all.
	SlowProbeInterval time.Duration
	ProbeRate         float64 // slow probes a second, at most, across the fleet
	ProbeTimeout      time.Duration
	FailThreshold     int     // consecutive failed probes before a server is out
	DegradedPercent   float64 // CPU or memory use above this → degraded
	// ListInterval is how often the registered servers are re-read (ids
	// and addresses only).
	ListInterval time.Duration
	// ResyncInterval is how often the whole gossip view is read again, in
	// case membership events were dropped (the pool drops them rather than
	// block gossip when thousands of members change at once).
	ResyncInterval time.Duration
}

// DefaultOptions suit a LAN.
func DefaultOptions() Options {
	return Options{ProbeInterval: time.Second, SlowProbeInterval: 5 * time.Second, ProbeRate: 50, ProbeTimeout: 1500 * time.Millisecond,
		FailThreshold: 2, DegradedPercent: 95, ListInterval: 5 * time.Second, ResyncInterval: 10 * time.Second}
}

// maxProbes bounds the probes in flight: a server that does not answer
// holds its slot for ProbeTimeout.
const maxProbes = 512

// ownConnectionFrom is the interval of slow probes from which they dial a
// connection of their own and close it (Agents.Probe): from 500 servers
// (at ProbeRate 50). The idle connections of kept-alive probes cost the
// scheduler far more than the handshakes (measured at 1,000 servers probed
// every 20 s: 82 KiB of RSS per server with kept-alive connections, 18 KiB
// with probes on their own; at most ProbeRate handshakes are made a
// second). See ownConnectionLocked for the servers probed more often.
const ownConnectionFrom = 10 * time.Second

// maxWrites bounds the health transitions being written at once; the
// registry commits concurrent writes together.
const maxWrites = 64

// Registry is what the tracker reads and writes.
type Registry interface {
	ListServerAddrs(ctx context.Context) ([]registry.ServerAddr, error)
	SetServerHealth(ctx context.Context, id string, health fleet.Health, lastError string, at time.Time) (bool, error)
}

// Agents gives the client of a server's agent: Client's keeps its
// connections open between calls (IdleConnTimeout), Probe's dials for each
// call and hangs up, so that a server called only now and then holds
// nothing open.
type Agents interface {
	Client(serverID, addr string) *agentclient.Client
	Probe(serverID, addr string) *agentclient.Client
}

// Pool is the gossip view.
type Pool interface {
	Members() []gossip.Member
	Subscribe() <-chan gossip.Event
}

type serverState struct {
	addr string // the agent's address; "" until the registry lists the server

	gossipState string // "" when gossip never saw it
	metaOK      bool   // the member's metadata decoded
	metaSeq     uint64 // NodeMeta.Seq of the last metadata applied
	eventSeq    uint64 // the agent's latest event number, as last heard

	probed       bool // a probe has succeeded at least once
	failures     int  // consecutive failed probes
	unreachable  bool // the last failure was a connection failure
	lastErr      string
	dockerOK     bool // what was last heard of the agent's dockerd: a probe's answer or gossip
	dockerErr    string
	dockerGossip bool // dockerOK came from gossip, which will say when it changes
	cpuPct       float64
	memPct       float64

	next      time.Time // when the next probe is due
	probing   bool      // a probe is in flight
	keptUntil time.Time // its kept-alive probe connection idles out (ownConnectionLocked)

	health    fleet.Health
	reason    string
	downSince time.Time // when it last left healthy/degraded; zero while up
	dirty     bool      // health or reason changed and is not yet written
	changedAt time.Time // when they changed
}

// Tracker tracks server health: one state per registered server, fed by
// gossip (membership events and metadata) and mTLS probes of each agent's
// health endpoint. Probes are per server and adapt to gossip: every
// ProbeInterval while gossip says nothing fresh about the server, every
// SlowProbeInterval while it does (further apart in a large fleet, so that
// these stay at ProbeRate a second), so that with gossip the probes cost
// little at any fleet size. It also tells its Watcher (FollowEvents) what
// each agent says of its event log. Safe for concurrent use; Run owns its
// goroutines.
type Tracker struct {
	reg    Registry
	agents Agents
	pool   Pool // nil when gossip is off
	opts   Options
	log    hclog.Logger
	addr   func(registry.Server) string
	events *Watcher            // nil: nobody follows the event logs
	sub    <-chan gossip.Event // the pool's events, subscribed to by the first Run

	mu     sync.Mutex
	states map[string]*serverState
	wake   chan struct{} // a probe became due now (gossip saw a server come back)
	write  chan struct{} // a transition waits to be written
}

// New builds a tracker. addr gives a server's agent address.
func New(reg Registry, agents Agents, pool Pool, addr func(registry.Server) string, opts Options, log hclog.Logger) *Tracker {
	return &Tracker{reg: reg, agents: agents, pool: pool, addr: addr, opts: opts, log: log,
		states: map[string]*serverState{}, wake: make(chan struct{}, 1), write: make(chan struct{}, 1)}
}

// Forget drops every opinion, as a new process starts: a scheduler that
// leads again after another led calls it (and the Watcher's) before Run,
// so that nothing stale (a server's down-since, a transition not written)
// carries over.
func (t *Tracker) Forget() {
	t.mu.Lock()
	t.states = map[string]*serverState{}
	t.mu.Unlock()
}

// FollowEvents makes the tracker tell w each server's agent address and
// what the agent says of its event log (gossip metadata, health answers).
// Call it before Run.
func (t *Tracker) FollowEvents(w *Watcher) { t.events = w }

// Health is the server's current state; ok is false before the tracker has
// formed an opinion.
func (t *Tracker) Health(serverID string) (fleet.Health, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.states[serverID]
	if !ok || s.health == "" {
		return "", false
	}
	return s.health, true
}

// DownSince reports since when a server has been gone (see lostLocked);
// ok is false while it is not.
func (t *Tracker) DownSince(serverID string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.states[serverID]
	if !ok || s.downSince.IsZero() {
		return time.Time{}, false
	}
	return s.downSince, true
}

// Run probes and listens until ctx ends.
func (t *Tracker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.writeLoop(ctx)
	}()

	if t.pool != nil && t.sub == nil { // once: a subscription lives as long as the pool
		t.sub = t.pool.Subscribe()
	}
	events := t.sub
	t.refresh(ctx)
	t.resync()
	list := time.NewTicker(t.opts.ListInterval)
	defer list.Stop()
	resync := time.NewTicker(t.opts.ResyncInterval)
	defer resync.Stop()
	tick := time.NewTicker(max(t.opts.ProbeInterval/5, time.Millisecond))
	defer tick.Stop()
	sem := make(chan struct{}, maxProbes)
	// Every registered server is probed at once: until its first answer
	// its health is unknown and placement passes it by.
	t.probeDue(ctx, sem, &wg)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else {
				t.onGossip(ev.Member)
			}
			continue // probes start on the tick, or on a wake
		case <-list.C:
			t.refresh(ctx)
		case <-resync.C:
			t.resync()
			continue
		case <-t.wake:
		case <-tick.C:
		}
		t.probeDue(ctx, sem, &wg)
	}
}

// refresh re-reads the registered servers: new ones are probed at once,
// removed ones forgotten (as are gossip members that were never
// registered), and the event watcher follows the same servers.
func (t *Tracker) refresh(ctx context.Context) {
	servers, err := t.reg.ListServerAddrs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("list servers", "error", err)
		}
		return
	}
	addrs := make(map[string]string, len(servers))
	for _, srv := range servers {
		addrs[srv.ID] = t.addr(srv.Server())
	}
	t.mu.Lock()
	for id := range t.states {
		if _, ok := addrs[id]; !ok {
			delete(t.states, id)
		}
	}
	for id, addr := range addrs {
		s := t.stateLocked(id)
		if s.addr != addr {
			s.addr, s.next = addr, time.Time{} // new, or moved: probe it now
		}
	}
	t.mu.Unlock()
	if t.events != nil {
		t.events.servers(addrs)
	}
}

// resync reads the whole gossip view, as if each member had just been
// announced: events the pool dropped are caught up.
func (t *Tracker) resync() {
	if t.pool == nil {
		return
	}
	for _, m := range t.pool.Members() {
		if !m.Unregistered {
			t.onGossip(m)
		}
	}
}

// onGossip takes what gossip says of a member: its state, its use of CPU
// and memory, whether its dockerd answers and its latest event number.
func (t *Tracker) onGossip(m gossip.Member) {
	if m.Meta.Role != wire.NodeRoleAgent {
		return
	}
	t.mu.Lock()
	s, ok := t.states[m.Name]
	if !ok { // not registered (yet): the next refresh says
		t.mu.Unlock()
		return
	}
	was, wasVouched := s.gossipState, t.vouchedLocked(s)
	s.gossipState, s.metaOK = m.State, m.MetaErr == ""
	if s.metaOK {
		if m.Meta.MemTotalMB > 0 {
			s.memPct = 100 * float64(m.Meta.MemTotalMB-m.Meta.MemFreeMB) / float64(m.Meta.MemTotalMB)
		}
		s.cpuPct = float64(m.Meta.CPUUsedPct)
		s.eventSeq = m.Meta.EventSeq
		// Only metadata the agent published since is newer than a probe's
		// answer (a resync repeats what was already applied).
		if m.Meta.Seq != s.metaSeq && s.probed {
			s.dockerOK, s.dockerErr, s.dockerGossip = !m.Meta.DockerDown, "", true
			if m.Meta.DockerDown {
				s.dockerErr = "the agent cannot reach its dockerd (gossip)"
			}
		}
		s.metaSeq = m.Meta.Seq
	}
	vouched := t.vouchedLocked(s)
	back := m.State == gossip.StateAlive && was != gossip.StateAlive
	probeNow := back || (wasVouched && !vouched)
	if probeNow {
		s.next = time.Time{} // it is back, or gossip stopped vouching for it
	}
	t.evaluateLocked(m.Name, s)
	seq, addr := s.eventSeq, s.addr
	t.mu.Unlock()
	if probeNow {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	if t.events != nil && vouched && addr != "" {
		t.events.sighted(m.Name, addr, seq)
	}
}

// vouchedLocked is whether gossip says something fresh about the server:
// it is an alive member whose metadata decodes. Such a server is probed
// slowly, unless its probes are failing.
func (t *Tracker) vouchedLocked(s *serverState) bool {
	return t.pool != nil && s.gossipState == gossip.StateAlive && s.metaOK
}

// intervalLocked is the mean time to the server's next probe.
func (t *Tracker) intervalLocked(s *serverState) time.Duration {
	if t.vouchedLocked(s) && s.probed && s.failures == 0 && (s.dockerOK || s.dockerGossip) {
		return t.slowIntervalLocked()
	}
	return t.opts.ProbeInterval
}

// slowIntervalLocked is the interval of servers gossip vouches for:
// SlowProbeInterval, or longer so that their probes stay at ProbeRate.
func (t *Tracker) slowIntervalLocked() time.Duration {
	d := t.opts.SlowProbeInterval
	if t.opts.ProbeRate > 0 {
		d = max(d, time.Duration(float64(len(t.states))/t.opts.ProbeRate*float64(time.Second)))
	}
	return d
}

// ownConnectionLocked is whether the server's next probe dials a
// connection of its own (see probeOne). In a fleet whose slow probes come
// ownConnectionFrom or more apart, they do; so do those of servers probed
// every ProbeInterval (gossip does not vouch for them, or their last probe
// failed) past the first maxKeptProbes of them. kept counts the servers
// holding a kept-alive probe connection (-1: not counted yet). When the
// scheduler starts, gossip vouches for none yet, and kept-alive probes of
// 10,000 servers held 6,000 connections open and took the RSS to 460 MB
// (TestBenchFootprint), while a handshake a second for each of a few
// troubled servers costs more CPU than their idle connections cost memory.
func (t *Tracker) ownConnectionLocked(s *serverState, now time.Time, kept *int) bool {
	if t.slowIntervalLocked() < ownConnectionFrom {
		return false
	}
	if t.intervalLocked(s) >= ownConnectionFrom {
		return true
	}
	holds := now.Before(s.keptUntil)
	if *kept < 0 {
		*kept = 0
		for _, o := range t.states {
			if now.Before(o.keptUntil) {
				*kept++
			}
		}
	}
	if !holds && *kept >= maxKeptProbes {
		return true
	}
	if !holds {
		*kept++
	}
	s.keptUntil = now.Add(agentclient.IdleConnTimeout)
	return false
}

// maxKeptProbes bounds the servers probed every ProbeInterval over
// kept-alive connections in a large fleet (ownConnectionLocked): about
// 30 KiB each.
const maxKeptProbes = 256

// probeDue starts the probes that are due, as many as sem allows.
func (t *Tracker) probeDue(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := -1 // counted when first needed (ownConnectionLocked)
	for id, s := range t.states {
		if s.addr == "" || s.probing || now.Before(s.next) {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			return // the rest on the next tick
		}
		s.probing = true
		addr, own := s.addr, t.ownConnectionLocked(s, now, &kept)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.probeOne(ctx, id, addr, own)
		}()
	}
}

// probeOne probes one server, over a connection of its own closed after
// the probe (own), or over the server's kept-alive connections: an idle
// connection kept open per server costs the scheduler more memory than
// everything else it keeps of the server (measured: ~30 KiB), so a large
// fleet's probes mostly dial their own (ownConnectionLocked).
func (t *Tracker) probeOne(ctx context.Context, id, addr string, own bool) {
	pctx, cancel := context.WithTimeout(ctx, t.opts.ProbeTimeout)
	defer cancel()
	client := t.agents.Client
	if own {
		client = t.agents.Probe
	}
	h, err := client(id, addr).Health(pctx)
	t.mu.Lock()
	s, ok := t.states[id]
	if !ok || s.addr != addr || ctx.Err() != nil {
		if ok {
			s.probing = false
		}
		t.mu.Unlock()
		return
	}
	s.probing = false
	if err != nil {
		s.failures++
		s.unreachable = errors.Is(err, agentclient.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded)
		s.lastErr = err.Error()
	} else {
		s.failures, s.unreachable, s.probed = 0, false, true
		s.dockerOK, s.dockerErr, s.dockerGossip, s.lastErr = h.DockerOK, h.Error, false, h.Error
	}
	interval := t.intervalLocked(s)
	s.next = time.Now().Add(interval + time.Duration((rand.Float64()*0.4-0.2)*float64(interval)))
	t.evaluateLocked(id, s)
	t.mu.Unlock()
	if err == nil && t.events != nil && h.EventSeq != 0 {
		t.events.sighted(id, addr, h.EventSeq)
	}
}

func (t *Tracker) stateLocked(id string) *serverState {
	s, ok := t.states[id]
	if !ok {
		s = &serverState{}
		t.states[id] = s
	}
	return s
}

// evaluateLocked applies the rules and marks a transition to be written.
func (t *Tracker) evaluateLocked(id string, s *serverState) {
	h, reason := t.decideLocked(s)
	changed := h != s.health || (reason != s.reason && h != fleet.HealthHealthy)
	old := s.health
	s.health, s.reason = h, reason
	switch {
	case !t.lostLocked(s, h):
		s.downSince = time.Time{}
	case s.downSince.IsZero():
		s.downSince = time.Now()
	}
	if !changed {
		return
	}
	if old != h {
		t.log.Info("server health changed", "server", id, "from", old, "to", h, "reason", reason)
	}
	s.dirty, s.changedAt = true, time.Now()
	select {
	case t.write <- struct{}{}:
	default:
	}
}

// writeLoop writes the transitions to the registry (which records an
// event each) until ctx ends, the latest of each server, up to maxWrites
// at once: the loops that decide never wait for the registry.
func (t *Tracker) writeLoop(ctx context.Context) {
	type transition struct {
		id, reason string
		health     fleet.Health
		at         time.Time
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.write:
		}
		var batch []transition
		t.mu.Lock()
		for id, s := range t.states {
			if s.dirty {
				s.dirty = false
				batch = append(batch, transition{id, s.reason, s.health, s.changedAt})
			}
		}
		t.mu.Unlock()
		sem := make(chan struct{}, maxWrites)
		var wg sync.WaitGroup
		for _, tr := range batch {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if _, err := t.reg.SetServerHealth(ctx, tr.id, tr.health, tr.reason, tr.at); err != nil &&
					!errors.Is(err, registry.ErrNotFound) && ctx.Err() == nil {
					t.log.Warn("record server health", "server", tr.id, "error", err)
				}
			}()
		}
		wg.Wait()
	}
}

// lostLocked is whether the server counts as gone for failover: with gossip,
// only when the pool itself declares the agent dead or left — memberlist's
// indirect probes through other members mean nobody can reach it, which is
// also when the agent's fence stops its workspaces; a host that only the
// scheduler cannot reach, or whose dockerd misbehaves, is out of placement
// but keeps its workspaces. Without gossip, unreachable counts.
func (t *Tracker) lostLocked(s *serverState, h fleet.Health) bool {
	if t.pool != nil {
		return s.gossipState == gossip.StateDead || s.gossipState == gossip.StateLeft
	}
	return h == fleet.HealthUnreachable
}

func (t *Tracker) decideLocked(s *serverState) (fleet.Health, string) {
	switch {
	case s.gossipState == gossip.StateDead || s.gossipState == gossip.StateLeft:
		return fleet.HealthUnreachable, "gossip: agent " + s.gossipState
	case s.failures >= t.opts.FailThreshold && s.unreachable:
		return fleet.HealthUnreachable, fmt.Sprintf("%d probes failed: %s", s.failures, s.lastErr)
	case s.failures >= t.opts.FailThreshold:
		return fleet.HealthUnhealthy, fmt.Sprintf("%d probes failed: %s", s.failures, s.lastErr)
	case !s.probed:
		return fleet.HealthUnknown, "not probed yet"
	case !s.dockerOK:
		return fleet.HealthUnhealthy, "docker not responding: " + s.dockerErr
	case s.cpuPct > t.opts.DegradedPercent:
		return fleet.HealthDegraded, fmt.Sprintf("cpu use %.0f%%", s.cpuPct)
	case s.memPct > t.opts.DegradedPercent:
		return fleet.HealthDegraded, fmt.Sprintf("memory use %.0f%%", s.memPct)
	}
	return fleet.HealthHealthy, ""
}
