package orchestrator

import (
	"time"

	"berth/scheduler/internal/fleet"
	"berth/shared/wire"
)

// ReasonServerLost is the status reason of a workspace whose server has
// been down for longer than the lost-server grace.
const ReasonServerLost = "server_lost"

// StatusFromDocker maps a Docker state to a workspace status as a request
// sync does (contract §8.2, "on request" column); ok is false when the
// status stays as it is.
func StatusFromDocker(state string) (fleet.Status, bool) {
	switch state {
	case "running":
		return fleet.StatusRunning, true
	case "exited", "stopped":
		return fleet.StatusStopped, true
	case "dead", "removing":
		return fleet.StatusError, true
	}
	return "", false
}

// liveStatus is the status a container's state means, with the reason
// recorded for it; an OOM-killed container is an error, not a stop.
func liveStatus(c wire.Container) (fleet.Status, string, bool) {
	if c.OOMKilled && c.State != "running" {
		return fleet.StatusError, "container was OOM-killed", true
	}
	status, ok := StatusFromDocker(c.State)
	return status, "container " + c.State, ok
}

// liveSince is when a container got into the state liveStatus reads, as
// Docker tells it (its start if it runs, else its end); zero when Docker
// does not say. A status set from it is billed from or to that moment.
func liveSince(c wire.Container) time.Time {
	if c.State == "running" {
		return c.StartedAt
	}
	return c.FinishedAt
}
