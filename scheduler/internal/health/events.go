package health

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/shared/wire"
)

// Sink receives what the agents' event logs say. The orchestrator
// implements it: it owns every write to a workspace.
type Sink interface {
	// ContainerEvent is one Docker event of a berth container on serverID.
	ContainerEvent(ctx context.Context, serverID string, ev wire.ContainerEvent)
	// StreamOpened is called each time the watcher (re)starts following
	// serverID's events — first contact, an agent restart, events the
	// agent no longer holds: events may have been missed, so reconcile it.
	StreamOpened(ctx context.Context, serverID string)
}

// Watcher delivers each registered server's container events to its Sink
// without holding anything open per server: each agent numbers its events
// (wire.PathEventLog) and publishes the latest number in its gossip
// metadata and health answer; the Tracker passes those on (sighted) and the
// watcher fetches the events after its cursor whenever the number differs
// from it. Its first fetch, and any the agent cannot answer from its log
// (a restart, a break of its Docker event stream, a cursor that fell out of
// the log), is a reset: the server is reconciled (Sink.StreamOpened) and
// followed from the agent's latest number. An agent without an event log (an
// older agent) is followed over its event stream instead, as before.
//
// The Tracker tells it the registered servers (servers) and the numbers
// (sighted); Run fetches. Safe for concurrent use; Run owns its goroutines.
type Watcher struct {
	agents Agents
	sink   Sink
	log    hclog.Logger

	mu      sync.Mutex
	follows map[string]*following // by server id
	pending map[string]bool       // servers with something to fetch
	wake    chan struct{}
}

// following is one server's cursor.
type following struct {
	addr    string
	cursor  uint64 // the number of the last event delivered; 0: reset first
	want    uint64 // the latest number heard of; fetch while it is not the cursor
	busy    bool   // a fetch or a stream is running
	stream  bool   // the agent keeps no event log: its stream is followed
	backoff time.Duration
	retryAt time.Time
	cancel  context.CancelFunc // of the running fetch or stream
}

// fetchers bounds the fetches in flight, fetchTimeout each; maxBackoff
// bounds the retry delay of a server whose agent does not answer.
const (
	fetchers     = 32
	fetchTimeout = 30 * time.Second
	maxBackoff   = 30 * time.Second
)

// NewWatcher builds a watcher; give it to the Tracker (FollowEvents).
func NewWatcher(agents Agents, sink Sink, log hclog.Logger) *Watcher {
	return &Watcher{agents: agents, sink: sink, log: log, follows: map[string]*following{}, pending: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// servers sets the registered servers (id → agent address): a new one, or
// one whose address changed, is followed from a reset; a removed one is
// dropped.
func (w *Watcher) servers(addrs map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, f := range w.follows {
		if addr, ok := addrs[id]; !ok || addr != f.addr {
			if f.cancel != nil {
				f.cancel()
			}
			delete(w.follows, id)
			delete(w.pending, id)
		}
	}
	for id, addr := range addrs {
		if _, ok := w.follows[id]; !ok {
			w.follows[id] = &following{addr: addr}
			w.pending[id] = true
		}
	}
	w.poke()
}

// sighted records that serverID's agent at addr says its latest event is
// numbered seq (its gossip metadata or health answer): the watcher fetches
// if that is not its cursor. A sighting also means the agent answers, so a
// pending retry is due at once.
func (w *Watcher) sighted(serverID, addr string, seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.follows[serverID]
	if !ok || f.addr != addr || f.stream {
		return
	}
	if seq == f.cursor && !w.pending[serverID] {
		return
	}
	f.want, f.retryAt = seq, time.Time{}
	w.pending[serverID] = true
	w.poke()
}

func (w *Watcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Forget drops every cursor, as a new process starts (see Tracker.Forget):
// each server is then reset and reconciled when next heard of.
func (w *Watcher) Forget() {
	w.mu.Lock()
	w.follows, w.pending = map[string]*following{}, map[string]bool{}
	w.mu.Unlock()
}

// Run fetches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, fetchers)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next := w.dispatch(ctx, sem, &wg); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake: // a sighting, a new server, or a fetch that ended
		case <-timer.C:
		}
	}
}

// dispatch starts the fetches that are due, as many as sem allows, and
// returns when the earliest retry is due (zero if none waits). A fetch
// that ends wakes Run, which dispatches the rest.
func (w *Watcher) dispatch(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) time.Time {
	now := time.Now()
	var next time.Time
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.pending {
		f := w.follows[id]
		if f.busy {
			continue // looked at again when its fetch ends
		}
		if now.Before(f.retryAt) {
			if next.IsZero() || f.retryAt.Before(next) {
				next = f.retryAt
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			return next
		}
		delete(w.pending, id)
		fctx, cancel := context.WithCancel(ctx)
		f.busy, f.cancel = true, cancel
		cursor, addr, stream := f.cursor, f.addr, f.stream
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			var update func(*following)
			if stream {
				<-sem // a stream holds no fetch slot
				update = w.follow(fctx, id, addr)
			} else {
				update = w.fetch(fctx, id, addr, cursor)
				<-sem
			}
			w.done(id, addr, update)
		}()
	}
	return next
}

// fetch asks the agent for the events after cursor and delivers them; it
// returns what becomes of the server's cursor.
func (w *Watcher) fetch(ctx context.Context, id, addr string, cursor uint64) func(*following) {
	// A reset (first contact: every server at once when the scheduler
	// starts) goes over a connection of its own, closed after, through a
	// client nothing caches: 10,000 first contacts on kept-alive
	// connections left thousands of them idle for IdleConnTimeout, the
	// largest part of the scheduler's memory at start (TestBenchFootprint).
	agent := w.agents.Client
	if cursor == 0 {
		agent = w.agents.Probe
	}
	client := agent(id, addr)
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	l, err := client.EventsSince(fctx, cursor)
	cancel()
	switch {
	case ctx.Err() != nil:
		return func(*following) {}
	case errors.Is(err, agentclient.ErrNoEventLog):
		w.log.Debug("agent keeps no event log: following its event stream", "server", id)
		return func(f *following) { f.stream, f.cursor = true, 0; w.pending[id] = true }
	case err != nil:
		w.log.Debug("fetch events: will retry", "server", id, "error", err)
		return func(f *following) {
			f.backoff = min(max(2*f.backoff, time.Second), maxBackoff)
			f.retryAt = time.Now().Add(f.backoff)
			w.pending[id] = true
		}
	case l.Reset:
		// Events up to l.Seq are covered by the reconciliation, which reads
		// the containers after this answer; the next fetch starts there.
		w.log.Debug("following events from a reset", "server", id, "seq", l.Seq)
		w.sink.StreamOpened(ctx, id)
	default:
		for _, ev := range l.Events {
			w.sink.ContainerEvent(ctx, id, ev)
		}
	}
	// A number heard of meanwhile has made the server pending again.
	return func(f *following) { f.cursor, f.want, f.backoff = l.Seq, l.Seq, 0 }
}

// follow reads the event stream of an agent without an event log until it
// breaks; the server is then fetched again (an upgraded agent has a log).
func (w *Watcher) follow(ctx context.Context, id, addr string) func(*following) {
	opened := false
	err := w.agents.Client(id, addr).Events(ctx, func() {
		opened = true
		w.log.Debug("event stream open", "server", id)
		w.sink.StreamOpened(ctx, id)
	}, func(ev wire.ContainerEvent) {
		w.sink.ContainerEvent(ctx, id, ev)
	})
	if ctx.Err() != nil {
		return func(*following) {}
	}
	if opened {
		w.log.Info("event stream broke", "server", id, "error", err)
	}
	return func(f *following) {
		f.stream, f.cursor = false, 0
		if opened {
			f.backoff = 0
		}
		f.backoff = min(max(2*f.backoff, 100*time.Millisecond), maxBackoff)
		f.retryAt = time.Now().Add(f.backoff)
		w.pending[id] = true
	}
}

// done ends a fetch or stream of id: update runs on its state, unless the
// server was removed or moved meanwhile; then Run dispatches again.
func (w *Watcher) done(id, addr string, update func(*following)) {
	w.mu.Lock()
	if f, ok := w.follows[id]; ok && f.addr == addr && f.busy {
		f.busy, f.cancel = false, nil
		update(f)
	}
	w.mu.Unlock()
	w.poke()
}
