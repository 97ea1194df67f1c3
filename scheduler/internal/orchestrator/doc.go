// Package orchestrator is the scheduler's write path for workspaces: it turns
// a create request into a placement, a reservation and a running container,
// and drives every later change of a workspace (stop, restart, delete, exec)
// through the agent of the workspace's server.
//
// Create: tier → resource request; snapshot of servers (registry rows, live
// capacity from gossip, health); placement ranks candidates; the registry
// reserves and inserts the row in one transaction; the agent creates and
// starts the container; the row becomes running. If the agent fails, the
// reservation is released and the next candidate is tried, and why is
// recorded as an event. If anything fails after a container exists, the
// container is removed: nothing is left half-made.
//
// Scale (scale.go): a tier change in place. The growth must fit the server's
// available room; the reservation is resized, then the agent updates the
// container's limits live; if that fails the reservation is put back and
// the scale is an error.
//
// An Orchestrator is safe for concurrent use; the registry's single writer
// serialises reservations, so concurrent creates never overcommit a server.
package orchestrator
