package fleet

// State is a server's admin state, set by an operator.
type State string

// Admin states. Only active servers take new workspaces.
const (
	StateActive   State = "active"   // accepts new workspaces
	StateDraining State = "draining" // keeps its workspaces, takes no new ones
	StateCordoned State = "cordoned" // out of service (maintenance)
)

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case StateActive, StateDraining, StateCordoned:
		return true
	}
	return false
}

// Health is a server's health as the health tracker judges it (contract
// §10.2).
type Health string

// Health states.
const (
	HealthHealthy     Health = "healthy"
	HealthDegraded    Health = "degraded"
	HealthUnhealthy   Health = "unhealthy"
	HealthUnreachable Health = "unreachable"
	HealthUnknown     Health = "unknown"
)

// Valid reports whether h is one of the defined values.
func (h Health) Valid() bool {
	switch h {
	case HealthHealthy, HealthDegraded, HealthUnhealthy, HealthUnreachable, HealthUnknown:
		return true
	}
	return false
}

// Usable reports whether a server in health h serves its workspaces: it
// answers, so exec, scale and the capacity lists may use it. Degraded (busy)
// servers are usable; the others are not.
func Usable(h Health) bool { return h == HealthHealthy || h == HealthDegraded }

// Schedulable reports whether a server takes new workspaces: usable and
// active.
func Schedulable(h Health, s State) bool { return Usable(h) && s == StateActive }

// Status is a workspace's status (contract §8.1).
type Status string

// Workspace statuses.
const (
	StatusCreating        Status = "creating"
	StatusRunning         Status = "running"
	StatusStopping        Status = "stopping"
	StatusStopped         Status = "stopped"
	StatusError           Status = "error"
	StatusPendingDeletion Status = "pending_deletion"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusCreating, StatusRunning, StatusStopping, StatusStopped, StatusError, StatusPendingDeletion:
		return true
	}
	return false
}
