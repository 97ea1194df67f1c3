package orchestrator

import (
	"sync"

	"berth/scheduler/internal/registry"
)

// flights are the creates under way, one per workspace id: the first caller
// of an id runs it, the others wait for it and share its outcome, so no
// caller is told anything before the create has ended.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// flight is one create; ws and err are set before done is closed.
type flight struct {
	userID  string // who runs it
	callers int    // who joined it, the runner included (under flights.mu)
	done    chan struct{}
	ws      registry.Workspace
	err     error
}

func newFlights() *flights { return &flights{m: map[string]*flight{}} }

// join returns the create of id under way, or starts one for userID
// (leader is then true, and the caller must land it).
func (f *flights) join(id, userID string) (fl *flight, leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[id]; ok {
		fl.callers++
		return fl, false
	}
	fl = &flight{userID: userID, callers: 1, done: make(chan struct{})}
	f.m[id] = fl
	return fl, true
}

// land records the outcome and wakes the waiters; later callers start a
// new flight.
func (f *flights) land(id string, fl *flight, ws registry.Workspace, err error) {
	f.mu.Lock()
	delete(f.m, id)
	f.mu.Unlock()
	fl.ws, fl.err = ws, err
	close(fl.done)
}
