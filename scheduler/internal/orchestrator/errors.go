package orchestrator

import (
	"errors"
	"fmt"
)

// Sentinels. The compute API and the admin API turn each into the status
// and text their callers expect; the texts here are for logs.
var (
	// ErrNoServers: no server is registered at all.
	ErrNoServers = errors.New("no servers registered")
	// ErrOwnedByOther: the workspace id exists and belongs to another user.
	ErrOwnedByOther = errors.New("workspace id belongs to another user")
	// ErrCreateFailed: every candidate's agent failed to create the container.
	ErrCreateFailed = errors.New("container create failed")
	// ErrStartFailed: the container was created but did not start.
	ErrStartFailed = errors.New("container created but did not start")
	// ErrCreateInterrupted: a create of this id was begun by a scheduler
	// that stopped (or lost its leadership) before answering; the
	// reconciliation adopts its container or drops its record within a few
	// seconds, after which a retry answers for itself.
	ErrCreateInterrupted = errors.New("an earlier create of this workspace was interrupted and is being resolved")
	// ErrNotFound: no such workspace.
	ErrNotFound = errors.New("workspace not found")
	// ErrExists: the workspace has a record (MarkHomeForDeletion is for
	// homes whose record is gone).
	ErrExists = errors.New("workspace exists")
	// ErrNoContainer: the workspace has no server or no container.
	ErrNoContainer = errors.New("workspace has no server or container")
	// ErrNotRunning: the workspace is not running.
	ErrNotRunning = errors.New("workspace is not running")
	// ErrMarkedForDeletion: the workspace awaits the cleanup loop.
	ErrMarkedForDeletion = errors.New("workspace is marked for deletion")
	// ErrServerUnavailable: the workspace's server is unknown or its agent
	// does not answer.
	ErrServerUnavailable = errors.New("server not available")
	// ErrNoServerAssignment: a scale of a workspace without a server.
	ErrNoServerAssignment = errors.New("workspace has no server assignment")
	// ErrScaleNoContainer: a scale of a workspace without a container.
	ErrScaleNoContainer = errors.New("workspace has no container to scale")
	// ErrScaleFailed: the agent did not update the container's limits; the
	// reservation was rolled back.
	ErrScaleFailed = errors.New("container update failed")
)

// PlacementError is a placement that found no server. Cause is one of
// placement's sentinels (errors.Is works through it); Region is the
// required region, if any; Summary groups every server's rejection for
// people ("insufficient memory on 3 servers").
type PlacementError struct {
	Cause   error
	Region  string
	Summary string
}

func (e *PlacementError) Error() string {
	return fmt.Sprintf("placement failed: %v (%s)", e.Cause, e.Summary)
}

func (e *PlacementError) Unwrap() error { return e.Cause }

// ImageMissingError is a create refused because the workspace image is not
// on the chosen server.
type ImageMissingError struct {
	Image    string
	ServerID string
}

func (e *ImageMissingError) Error() string {
	return fmt.Sprintf("image %s not found on server %s", e.Image, e.ServerID)
}

// ServerUnusableError is a scale of a workspace whose server is unknown or
// neither healthy nor degraded.
type ServerUnusableError struct {
	ServerID string
}

func (e *ServerUnusableError) Error() string {
	return fmt.Sprintf("server %s not found or unhealthy", e.ServerID)
}

// ServerInUseError is an eviction refused because the server still has
// workspaces and force was not given.
type ServerInUseError struct {
	ServerID   string
	Workspaces int
}

func (e *ServerInUseError) Error() string {
	return fmt.Sprintf("server %s still has %d workspaces", e.ServerID, e.Workspaces)
}
