package computeapi

import (
	"sync"
)

// StreamLimits bound the interactive streams of one workspace: past a cap a
// new stream is refused with a clear error (a WebSocket close with 1013
// "Try Again Later" and a reason naming the cap), never queued.
type StreamLimits struct {
	Terminals int // open terminal WebSockets per workspace
	Sockets   int // open proxied WebSockets per workspace (/ws/...)
}

// DefaultStreamLimits are the caps Deps leaves zero (each on its own).
var DefaultStreamLimits = StreamLimits{Terminals: 32, Sockets: 64}

// streams counts the open interactive streams per workspace and kind, and
// ends them all when the server shuts down (hijacked connections are not
// the http.Server's to close). Safe for concurrent use.
type streams struct {
	mu      sync.Mutex
	open    map[streamKey]int
	wg      sync.WaitGroup
	closing chan struct{}
	once    sync.Once
}

type streamKey struct{ workspace, kind string }

func newStreams() *streams {
	return &streams{open: map[streamKey]int{}, closing: make(chan struct{})}
}

// acquire takes one of max slots of kind for the workspace; ok is false at
// the cap or once shutting down. release gives the slot back.
func (s *streams) acquire(workspaceID, kind string, max int) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closing:
		return nil, false
	default:
	}
	k := streamKey{workspaceID, kind}
	if s.open[k] >= max {
		return nil, false
	}
	s.open[k]++
	s.wg.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.open[k]--; s.open[k] <= 0 {
				delete(s.open, k)
			}
			s.mu.Unlock()
			s.wg.Done()
		})
	}, true
}

// count is how many streams of kind the workspace has open.
func (s *streams) count(workspaceID, kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[streamKey{workspaceID, kind}]
}

// shutdown tells every stream to end (with 1001 "Server is shutting
// down") and waits for them.
func (s *streams) shutdown() {
	s.once.Do(func() { close(s.closing) })
	s.wg.Wait()
}

// Shutdown ends the open terminal and WebSocket streams, each with close
// code 1001 "Server is shutting down", and waits until they are closed.
// Register it with the http.Server (RegisterOnShutdown): Shutdown of the
// server itself does not touch hijacked connections.
func (a *API) Shutdown() { a.streams.shutdown() }
