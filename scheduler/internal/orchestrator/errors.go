package orchestrator

import "errors"

// Sentinels. The compute API maps each to the contract's status and detail.
var (
	// ErrNoServers: no server is registered at all.
	ErrNoServers = errors.New("No servers available for workspace creation")
	// ErrPlacement wraps a placement failure; its message is the contract's
	// 503 detail (e.g. "No server has sufficient resources").
	ErrPlacement = errors.New("placement failed")
	// ErrOwnedByOther: the workspace id exists and belongs to another user.
	ErrOwnedByOther = errors.New("Workspace ID already in use")
	// ErrImageNotFound: the image is missing on the chosen server.
	ErrImageNotFound = errors.New("workspace image not found")
	// ErrCreateFailed: every candidate's agent failed to create the container.
	ErrCreateFailed = errors.New("Container creation returned no container ID")
	// ErrStartFailed: the container was created but did not start.
	ErrStartFailed = errors.New("Container created but failed to start. Check container logs for details.")
	// ErrNotFound: no such workspace.
	ErrNotFound = errors.New("Workspace not found")
	// ErrNoContainer: the workspace has no server or container.
	ErrNoContainer = errors.New("Workspace has no assigned server or container")
	// ErrNotRunning: the workspace is not running.
	ErrNotRunning = errors.New("workspace is not running")
	// ErrMarkedForDeletion: the workspace awaits the cleanup loop.
	ErrMarkedForDeletion = errors.New("workspace is marked for deletion")
	// ErrServerUnavailable: the workspace's server is unknown or unreachable.
	ErrServerUnavailable = errors.New("Server not available")
	// ErrNoServerAssignment: a scale of a workspace without a server.
	ErrNoServerAssignment = errors.New("Workspace has no server assignment")
	// ErrServerUnhealthy: the workspace's server is not in the capacity
	// list (unknown, or neither healthy nor degraded); wrapped as
	// "Server <id> not found or unhealthy".
	ErrServerUnhealthy = errors.New("not found or unhealthy")
	// ErrScaleNoContainer: a scale of a workspace without a container. The
	// text carries the prefix that the contract's detail doubles (§3.17).
	ErrScaleNoContainer = errors.New("Failed to scale workspace: Workspace has no container")
	// ErrScaleFailed: the agent did not update the container's limits; the
	// reservation was rolled back.
	ErrScaleFailed = errors.New("container update failed")
)
