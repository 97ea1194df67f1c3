package eventlog

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/shared/wire"
)

func ev(id string) wire.ContainerEvent { return wire.ContainerEvent{ContainerID: id, Action: "die"} }

func ids(evs []wire.ContainerEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ContainerID)
	}
	return out
}

func TestSince(t *testing.T) {
	l := New()
	l.size = 3
	base := l.Seq()
	for _, id := range []string{"a", "b", "c", "d"} { // "a" falls out
		l.add(ev(id))
	}
	tests := []struct {
		name      string
		after     uint64
		wantReset bool
		want      []string
	}{
		{"first call", 0, true, []string{}},
		{"a cursor of an earlier run", base - 7, true, []string{}},
		{"fell out of the log", base, true, []string{}},
		{"oldest kept", base + 1, false, []string{"b", "c", "d"}},
		{"some", base + 3, false, []string{"d"}},
		{"up to date", base + 4, false, []string{}},
		{"from the future (another run)", base + 5, true, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := l.Since(tt.after)
			if got.Seq != base+4 || got.Reset != tt.wantReset || !slices.Equal(ids(got.Events), tt.want) {
				t.Errorf("Since(base%+d) = seq base%+d reset %v %v, want seq base+4 reset %v %v",
					int64(tt.after-base), int64(got.Seq-base), got.Reset, ids(got.Events), tt.wantReset, tt.want)
			}
		})
	}
	seq, _ := l.gap()
	if got := l.Since(base + 4); !got.Reset || got.Seq != seq {
		t.Errorf("after a gap: %+v, want a reset at %d", got, seq)
	}
	l.add(ev("e"))
	if got := l.Since(seq); got.Reset || !slices.Equal(ids(got.Events), []string{"e"}) {
		t.Errorf("after the gap's number: %+v, want e", got)
	}
}

// source is a Docker event source whose subscriptions the test feeds and
// breaks.
type source struct {
	mu   sync.Mutex
	down bool
	subs chan sub // each new subscription
}

type sub struct {
	evs  chan wire.ContainerEvent
	errs chan error
}

func (s *source) Events(ctx context.Context) (<-chan wire.ContainerEvent, <-chan error) {
	x := sub{make(chan wire.ContainerEvent), make(chan error, 1)}
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		x.errs <- errors.New("docker is down")
		return x.evs, x.errs
	}
	s.subs <- x
	return x.evs, x.errs
}

// Run numbers the events of its subscription, and a break of it moves the
// number at once (a gap: cursors reset) and again when a new subscription
// has lasted a second (Docker is back: reset again).
func TestRunGaps(t *testing.T) {
	src := &source{subs: make(chan sub, 4)}
	l := New()
	changes := make(chan uint64, 16)
	l.OnChange(func(seq uint64) { changes <- seq })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, src, hclog.NewNullLogger()) }()
	defer func() { cancel(); <-done }()
	next := func(what string) uint64 {
		t.Helper()
		select {
		case s := <-changes:
			return s
		case <-time.After(5 * time.Second):
			t.Fatalf("no change: %s", what)
			return 0
		}
	}

	first := <-src.subs
	cursor := l.Seq()
	first.evs <- ev("a")
	if s := next("event a"); s != cursor+1 {
		t.Fatalf("after a: seq %d, want %d", s, cursor+1)
	}
	if got := l.Since(cursor); got.Reset || !slices.Equal(ids(got.Events), []string{"a"}) {
		t.Fatalf("Since = %+v, want a", got)
	}
	cursor++

	src.mu.Lock()
	src.down = true
	src.mu.Unlock()
	first.errs <- errors.New("dockerd went away")
	broke := next("the break")
	if got := l.Since(cursor); !got.Reset {
		t.Errorf("after the break: %+v, want a reset", got)
	}
	select {
	case s := <-changes:
		t.Fatalf("seq moved to %d while Docker stays down, want no change", s)
	case <-time.After(1500 * time.Millisecond): // failed re-subscriptions do not settle
	}
	src.mu.Lock()
	src.down = false
	src.mu.Unlock()
	<-src.subs // re-opened
	back := next("Docker back")
	if back <= broke {
		t.Errorf("back at %d, want after the break at %d", back, broke)
	}
	if got := l.Since(broke); !got.Reset {
		t.Errorf("a cursor from while Docker was down: %+v, want a reset", got)
	}
	if got := l.Since(back); got.Reset || len(got.Events) != 0 {
		t.Errorf("the latest cursor: %+v, want nothing new", got)
	}
}
