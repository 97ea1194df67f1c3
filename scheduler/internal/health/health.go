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
	ProbeInterval   time.Duration // mean time between probes of one server (±20 % jitter)
	ProbeTimeout    time.Duration
	FailThreshold   int     // consecutive failed probes before a server is out
	DegradedPercent float64 // CPU or memory use above this → degraded
}

// DefaultOptions suit a LAN.
func DefaultOptions() Options {
	return Options{ProbeInterval: time.Second, ProbeTimeout: 1500 * time.Millisecond, FailThreshold: 2, DegradedPercent: 95}
}

// Registry is what the tracker reads and writes.
type Registry interface {
	ListServers(ctx context.Context) ([]registry.Server, error)
	SetServerHealth(ctx context.Context, id string, health fleet.Health, lastError string, at time.Time) (bool, error)
}

// Agents gives the client of a server's agent.
type Agents interface {
	Client(serverID, addr string) *agentclient.Client
}

// Pool is the gossip view.
type Pool interface {
	Members() []gossip.Member
	Subscribe() <-chan gossip.Event
}

type serverState struct {
	gossipState string // "" when gossip never saw it
	gossipMeta  wire.NodeMeta
	probed      bool // a probe has succeeded at least once
	failures    int  // consecutive failed probes
	unreachable bool // the last failure was a connection failure
	lastErr     string
	dockerOK    bool
	cpuPct      float64
	memPct      float64
	health      fleet.Health
	reason      string
	downSince   time.Time // when it last left healthy/degraded; zero while up
}

// Tracker tracks server health.
type Tracker struct {
	reg    Registry
	agents Agents
	pool   Pool // nil when gossip is off
	opts   Options
	log    hclog.Logger
	addr   func(registry.Server) string

	mu     sync.Mutex
	states map[string]*serverState
	probe  chan string // servers to probe now (gossip saw them come back)
}

// New builds a tracker. addr gives a server's agent address.
func New(reg Registry, agents Agents, pool Pool, addr func(registry.Server) string, opts Options, log hclog.Logger) *Tracker {
	return &Tracker{reg: reg, agents: agents, pool: pool, addr: addr, opts: opts, log: log,
		states: map[string]*serverState{}, probe: make(chan string, 64)}
}

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
	var events <-chan gossip.Event
	if t.pool != nil {
		events = t.pool.Subscribe()
		for _, m := range t.pool.Members() {
			t.onGossip(ctx, m)
		}
	}
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			t.onGossip(ctx, ev.Member)
		case id := <-t.probe:
			t.probeAll(ctx, id)
		case <-tick.C:
			t.probeAll(ctx, "")
			jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(t.opts.ProbeInterval))
			tick.Reset(t.opts.ProbeInterval + jitter)
		}
	}
}

func (t *Tracker) onGossip(ctx context.Context, m gossip.Member) {
	if m.Meta.Role != wire.NodeRoleAgent {
		return
	}
	t.mu.Lock()
	s := t.stateLocked(m.Name)
	was := s.gossipState
	s.gossipState, s.gossipMeta = m.State, m.Meta
	if m.Meta.MemTotalMB > 0 {
		s.memPct = 100 * float64(m.Meta.MemTotalMB-m.Meta.MemFreeMB) / float64(m.Meta.MemTotalMB)
	}
	s.cpuPct = float64(m.Meta.CPUUsedPct)
	t.mu.Unlock()
	t.evaluate(ctx, m.Name)
	if m.State == gossip.StateAlive && was != gossip.StateAlive {
		select { // it is back: don't wait for the next probe round
		case t.probe <- m.Name:
		default:
		}
	}
}

// probeAll probes every registered server (or only one, if id is set)
// concurrently and re-evaluates their states.
func (t *Tracker) probeAll(ctx context.Context, only string) {
	servers, err := t.reg.ListServers(ctx)
	if err != nil {
		t.log.Warn("list servers", "error", err)
		return
	}
	if only == "" {
		t.pruneUnregistered(servers)
	}
	var wg sync.WaitGroup
	for _, srv := range servers {
		if only != "" && srv.ID != only {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.probeOne(ctx, srv)
		}()
	}
	wg.Wait()
}

func (t *Tracker) probeOne(ctx context.Context, srv registry.Server) {
	pctx, cancel := context.WithTimeout(ctx, t.opts.ProbeTimeout)
	defer cancel()
	h, err := t.agents.Client(srv.ID, t.addr(srv)).Health(pctx)
	if ctx.Err() != nil {
		return
	}
	t.mu.Lock()
	s := t.stateLocked(srv.ID)
	if err != nil {
		s.failures++
		s.unreachable = errors.Is(err, agentclient.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded)
		s.lastErr = err.Error()
	} else {
		s.failures, s.unreachable, s.probed = 0, false, true
		s.dockerOK, s.lastErr = h.DockerOK, h.Error
	}
	t.mu.Unlock()
	t.evaluate(ctx, srv.ID)
}

// pruneUnregistered forgets the state of servers no longer registered (or
// never registered: a gossip member the pool admitted under another rule),
// so the map holds at most one entry per registered server.
func (t *Tracker) pruneUnregistered(servers []registry.Server) {
	ids := make(map[string]bool, len(servers))
	for _, s := range servers {
		ids[s.ID] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range t.states {
		if !ids[id] {
			delete(t.states, id)
		}
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

// evaluate applies the rules and records a transition.
func (t *Tracker) evaluate(ctx context.Context, id string) {
	t.mu.Lock()
	s := t.stateLocked(id)
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
	t.mu.Unlock()
	if !changed {
		return
	}
	if old != h {
		t.log.Info("server health changed", "server", id, "from", old, "to", h, "reason", reason)
	}
	if _, err := t.reg.SetServerHealth(ctx, id, h, reason, time.Now()); err != nil && !errors.Is(err, registry.ErrNotFound) {
		t.log.Warn("record server health", "server", id, "error", err)
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
		return fleet.HealthUnhealthy, "docker not responding: " + s.lastErr
	case s.cpuPct > t.opts.DegradedPercent:
		return fleet.HealthDegraded, fmt.Sprintf("cpu use %.0f%%", s.cpuPct)
	case s.memPct > t.opts.DegradedPercent:
		return fleet.HealthDegraded, fmt.Sprintf("memory use %.0f%%", s.memPct)
	}
	return fleet.HealthHealthy, ""
}
