package dockerfake

import (
	"context"
	"maps"

	"berth/shared/wire"
)

// subscriber is one open event stream. Its queue and err are guarded by
// Fake.mu; wake tells its goroutine there is something new.
type subscriber struct {
	queue []wire.ContainerEvent
	err   error
	wake  chan struct{}
}

func (s *subscriber) notify() {
	select {
	case s.wake <- struct{}{}:
	default: // already told
	}
}

// failLocked ends the stream with err once its queued events are
// delivered (Fake.mu held).
func (s *subscriber) failLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	s.notify()
}

// Events streams every container event from now on, in order, as the
// adapter does. Both channels are closed when ctx ends or the fake goes
// down; in the latter case one error is sent first. The subscription is
// live when Events returns; while the fake is down Events fails at once.
func (f *Fake) Events(ctx context.Context) (<-chan wire.ContainerEvent, <-chan error) {
	out := make(chan wire.ContainerEvent)
	errc := make(chan error, 1)
	f.mu.Lock()
	if f.down {
		f.mu.Unlock()
		errc <- errDown()
		close(errc)
		close(out)
		return out, errc
	}
	s := &subscriber{wake: make(chan struct{}, 1)}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	go f.deliver(ctx, s, out, errc)
	return out, errc
}

// deliver is a subscriber's goroutine: it hands the queued events over
// until ctx ends or the stream fails.
func (f *Fake) deliver(ctx context.Context, s *subscriber, out chan<- wire.ContainerEvent, errc chan<- error) {
	defer close(out)
	defer close(errc)
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()
	for {
		f.mu.Lock()
		evs, err := s.queue, s.err
		s.queue = nil
		f.mu.Unlock()
		for _, ev := range evs {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			errc <- err
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
	}
}

// emitLocked queues the event action of e for every subscriber. The event
// carries the container's labels, as Docker's does.
func (f *Fake) emitLocked(action string, e *entry, exitCode int) {
	ev := wire.ContainerEvent{
		ContainerID: e.c.ID,
		WorkspaceID: e.c.Labels[wire.LabelWorkspaceID],
		Action:      action,
		ExitCode:    exitCode,
		Labels:      maps.Clone(e.c.Labels),
		Time:        f.now().UTC(),
	}
	for s := range f.subs {
		if s.err == nil {
			s.queue = append(s.queue, ev)
			s.notify()
		}
	}
}
