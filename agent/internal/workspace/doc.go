// Package workspace holds the agent's own policies over the workspaces on
// its host. Today that is the fence: an agent that has lost both the
// scheduler and every gossip peer for longer than its lease stops (never
// removes) its workspaces, because the scheduler may have declared this host
// lost and re-placed them elsewhere; a workspace must never run twice with
// the same home.
package workspace
