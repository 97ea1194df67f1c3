package orchestrator

import "sync"

// locks is one mutex per workspace id, alive only while someone holds or
// waits for it. Every operation that changes a workspace holds its lock
// from its first read to its last write; background work uses tryLock and
// skips a workspace that is being changed.
type locks struct {
	mu sync.Mutex
	m  map[string]*wsLock
}

type wsLock struct {
	sync.Mutex
	users int // holders and waiters
}

func newLocks() *locks { return &locks{m: map[string]*wsLock{}} }

// lock waits for the workspace's lock and returns its release.
func (l *locks) lock(id string) func() {
	w := l.enter(id)
	w.Lock()
	return func() { w.Unlock(); l.leave(id, w) }
}

// tryLock takes the workspace's lock if nobody holds it.
func (l *locks) tryLock(id string) (func(), bool) {
	w := l.enter(id)
	if !w.TryLock() {
		l.leave(id, w)
		return nil, false
	}
	return func() { w.Unlock(); l.leave(id, w) }, true
}

// held reports whether someone holds or waits for the workspace's lock.
func (l *locks) held(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id] != nil
}

func (l *locks) enter(id string) *wsLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[id]
	if !ok {
		w = &wsLock{}
		l.m[id] = w
	}
	w.users++
	return w
}

func (l *locks) leave(id string, w *wsLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.users--; w.users == 0 {
		delete(l.m, id)
	}
}
