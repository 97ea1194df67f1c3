package orchestrator

// LockUsers is how many operations hold or wait for the workspace's lock:
// a test sees with it that an operation is waiting for another.
func (o *Orchestrator) LockUsers(workspaceID string) int {
	l := o.Placer.locks
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.m[workspaceID]; w != nil {
		return w.users
	}
	return 0
}
