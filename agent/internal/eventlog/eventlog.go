// Package eventlog keeps the agent's numbered log of the Docker events of
// its berth containers, so that the scheduler can fetch the events it has
// not seen (wire.PathEventLog) when the latest number moves — which the
// agent publishes in its gossip metadata and health answer — instead of
// holding a stream open per agent.
//
// One Log per agent, fed by Run from one Docker event subscription that is
// re-opened whenever it breaks. Numbers start above the agent's start time
// in microseconds and grow by one per event, so a cursor of an earlier run
// is below every number of this one. The log keeps the latest Size events;
// a cursor older than that, a cursor from another run, or one from before a
// break of the Docker subscription (events may have been missed) is
// answered with a reset: the scheduler then compares its records with the
// containers, as it did on opening the stream.
//
// A Log is safe for concurrent use; Run owns its subscription.
package eventlog

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/shared/wire"
)

// Size is how many events a Log keeps.
const Size = 512

// Source is what the log needs of the Docker adapter.
type Source interface {
	Events(ctx context.Context) (<-chan wire.ContainerEvent, <-chan error)
}

type entry struct {
	seq uint64
	ev  wire.ContainerEvent
}

// Log is the agent's event log.
type Log struct {
	size int

	mu      sync.Mutex
	seq     uint64  // the latest number
	floor   uint64  // a cursor below it may have missed events: reset
	entries []entry // numbered floor+1 … seq, oldest first
	notify  func(seq uint64)
}

// New returns an empty log; its first number is now's Unix time in µs.
func New() *Log {
	base := uint64(time.Now().UnixMicro())
	return &Log{size: Size, seq: base, floor: base}
}

// OnChange makes the log call fn with the new latest number each time it
// moves (an event, or a break of the Docker subscription). fn is called
// from Run's goroutine, never concurrently, and must not block. Call it
// before Run.
func (l *Log) OnChange(fn func(seq uint64)) {
	l.mu.Lock()
	l.notify = fn
	l.mu.Unlock()
}

// Seq is the latest number.
func (l *Log) Seq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Since answers a cursor: the events numbered after it, or a reset when
// events after it are not all in the log (see the package comment). A
// cursor of 0 (a first call) is a reset.
func (l *Log) Since(after uint64) wire.EventLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := wire.EventLog{Seq: l.seq, Events: []wire.ContainerEvent{}}
	if after < l.floor || after > l.seq {
		out.Reset = true
		return out
	}
	// entries[i] is numbered floor+1+i.
	for _, e := range l.entries[after-l.floor:] {
		out.Events = append(out.Events, e.ev)
	}
	return out
}

// add appends one event and returns the new latest number.
func (l *Log) add(ev wire.ContainerEvent) (uint64, func(uint64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if len(l.entries) == l.size {
		l.floor = l.entries[0].seq
		l.entries = append(l.entries[:0], l.entries[1:]...)
	}
	l.entries = append(l.entries, entry{seq: l.seq, ev: ev})
	return l.seq, l.notify
}

// gap records that events may have been missed: every cursor so far is
// reset.
func (l *Log) gap() (uint64, func(uint64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.floor = l.seq
	l.entries = l.entries[:0]
	return l.seq, l.notify
}

// settle is how long a re-opened Docker subscription must last (or an
// event arrive) before the log says events may have been missed while it
// was broken: a dockerd that is down fails every subscription at once.
const settle = time.Second

// Run follows src until ctx ends, re-opening the subscription with backoff
// (100 ms doubling to 5 s) whenever it breaks. A break is a gap at once,
// and again once a re-opened subscription has settled, so the scheduler
// compares its records with the containers both when Docker went away and
// once it is back.
func (l *Log) Run(ctx context.Context, src Source, log hclog.Logger) error {
	backoff := 100 * time.Millisecond
	broken := false
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		evs, errs := src.Events(sctx)
		settled := time.NewTimer(settle)
		var err error
	follow:
		for {
			select {
			case <-ctx.Done():
				break follow
			case <-settled.C:
				if broken {
					broken = false
					l.changed(l.gap())
				}
				backoff = 100 * time.Millisecond
			case ev, ok := <-evs:
				if !ok {
					evs = nil // the error (or its absence) follows on errs
					continue
				}
				if broken {
					broken = false
					l.changed(l.gap())
				}
				l.changed(l.add(ev))
			case e, ok := <-errs:
				if ok && e != nil {
					err = e
				}
				break follow
			}
		}
		settled.Stop()
		cancel()
		select {
		case <-ctx.Done():
			return nil // stopped, not broken
		default:
		}
		if !broken {
			log.Warn("docker event stream broke, re-opening", "error", err)
			broken = true
			l.changed(l.gap())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (l *Log) changed(seq uint64, notify func(uint64)) {
	if notify != nil {
		notify(seq)
	}
}
