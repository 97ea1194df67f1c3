package placement

import (
	"strings"

	"berth/scheduler/internal/fleet"
)

// Strategy is how placement ranks the nodes that fit a request (contract §11.2).
type Strategy string

// Strategies.
const (
	// Spread prefers the node with the lowest CPU and memory utilisation
	// after placement. It is the default.
	Spread Strategy = "spread"
	// BestFit prefers the node left with the least free CPU and memory.
	BestFit Strategy = "best_fit"
	// Affinity prefers Request.AffinityServerID and falls back to Spread.
	Affinity Strategy = "affinity"
	// RoundRobin takes the nodes in server id order, one per call.
	RoundRobin Strategy = "round_robin"
)

// ParseStrategy returns the strategy named s, in any case ("SPREAD",
// "best_fit"). An empty or unknown name gives Spread.
func ParseStrategy(s string) Strategy {
	switch st := Strategy(strings.ToLower(strings.TrimSpace(s))); st {
	case Spread, BestFit, Affinity, RoundRobin:
		return st
	}
	return Spread
}

// Request is what a workspace needs from its server, and how to choose among
// the servers that have it.
type Request struct {
	// Resources are required; each must fit the node's available capacity.
	// Resources.GPUCount is the GPUs required when GPU is set (0 counts as
	// 1), and ignored when it is not.
	fleet.Resources

	GPU     bool   // a GPU is required; workspaces without one may still land on GPU nodes
	GPUType string // exact GPU type required; empty = any

	Architecture string            // required architecture, any spelling; empty = any
	Region       string            // required region, compared exactly; empty = any
	Labels       map[string]string // every pair must be in the node's labels

	Strategy         Strategy // any case; empty or unknown = Spread
	AffinityServerID string   // the preferred node for Affinity

	// HomeServerID is the node holding the workspace's home directory.
	// When it passes every filter it goes first, whatever the strategy:
	// the home stays where it is instead of being copied.
	HomeServerID string

	// Sequence is the round-robin counter. The caller keeps it and adds 1 per
	// call, whatever the strategy and whether the call succeeded, so that
	// placement stays pure.
	Sequence uint64
}
