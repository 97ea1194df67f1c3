// Package fence is the agent's placement-epoch lease: the one policy the
// agent applies to its workspaces on its own, without the scheduler.
//
// An agent that has heard neither from the scheduler (any authenticated API
// request, server.LastContact) nor from any gossip peer for longer than its
// lease stops (never removes) the workspaces on its host: the scheduler may
// have declared this host lost and re-placed them elsewhere, and a workspace
// must never run twice with the same home. When contact comes back the fence
// re-arms; the scheduler decides what restarts. The per-request half of
// fencing, refusing a request of a superseded placement (409 stale_epoch),
// is the API's epoch check (agent/internal/server).
//
// The agent's run loop owns the Fence and its Run goroutine.
package fence
