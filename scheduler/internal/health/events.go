package health

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// Sink receives what the agents' event streams say. The orchestrator
// implements it: it owns every write to a workspace.
type Sink interface {
	// ContainerEvent is one Docker event of a berth container on serverID.
	ContainerEvent(ctx context.Context, serverID string, ev wire.ContainerEvent)
	// StreamOpened is called each time the stream of serverID is
	// (re)established: events may have been missed, so reconcile it.
	StreamOpened(ctx context.Context, serverID string)
}

// Watcher holds one event stream open per registered server, re-opening it
// with backoff whenever it breaks, and follows servers being added and
// removed. Run owns its goroutines.
type Watcher struct {
	reg    Registry
	agents Agents
	sink   Sink
	addr   func(registry.Server) string
	log    hclog.Logger
	every  time.Duration // how often the server list is re-read
}

// NewWatcher builds a watcher.
func NewWatcher(reg Registry, agents Agents, sink Sink, addr func(registry.Server) string, log hclog.Logger) *Watcher {
	return &Watcher{reg: reg, agents: agents, sink: sink, addr: addr, log: log, every: 2 * time.Second}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	type stream struct {
		addr   string
		cancel context.CancelFunc
	}
	streams := map[string]stream{}
	var wg sync.WaitGroup
	defer func() {
		for _, s := range streams {
			s.cancel()
		}
		wg.Wait()
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		servers, err := w.reg.ListServers(ctx)
		if err != nil {
			w.log.Warn("list servers", "error", err)
			t.Reset(w.every)
			continue
		}
		seen := map[string]bool{}
		for _, srv := range servers {
			seen[srv.ID] = true
			addr := w.addr(srv)
			if s, ok := streams[srv.ID]; ok && s.addr == addr {
				continue
			} else if ok {
				s.cancel() // the address changed
			}
			sctx, cancel := context.WithCancel(ctx)
			streams[srv.ID] = stream{addr: addr, cancel: cancel}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.follow(sctx, srv)
			}()
		}
		for id, s := range streams {
			if !seen[id] {
				s.cancel()
				delete(streams, id)
			}
		}
		t.Reset(w.every)
	}
}

// follow keeps one server's stream open until ctx ends.
func (w *Watcher) follow(ctx context.Context, srv registry.Server) {
	client := w.agents.Client(srv.ID, w.addr(srv))
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		opened := false
		err := client.Events(ctx, func() {
			opened = true
			backoff = 100 * time.Millisecond
			w.log.Debug("event stream open", "server", srv.ID)
			w.sink.StreamOpened(ctx, srv.ID)
		}, func(ev wire.ContainerEvent) {
			w.sink.ContainerEvent(ctx, srv.ID, ev)
		})
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return
		}
		if opened {
			w.log.Info("event stream broke, re-opening", "server", srv.ID, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
