// Package placement decides which server a new workspace goes to.
//
// It sits in the create flow between the orchestrator's snapshot of the fleet
// and the registry's reservation: the orchestrator builds one Node per server
// (registry row + live capacity from gossip + health state) and a Request from
// the workspace's tier, calls Place, and then tries Decision.Candidates in
// order, reserving on the first server whose agent accepts the container.
//
// Placement is pure: no I/O, no clock, no logger, no goroutines and no state
// between calls. Even the round-robin counter is an input (Request.Sequence).
// Place is therefore safe to call from any number of goroutines at once, and
// the same input always gives the same Decision.
//
// It works as a pipeline, after the compute API contract §11.2:
//
//  1. Filters, cheapest first: health and admin state (fleet.Schedulable's
//     two halves), GPU (a GPU of the right type), resources (fleet.Fits:
//     CPU, memory, disk, bandwidth, GPUs), architecture, labels, max
//     workspaces (fleet.RoomForWorkspace), and last
//     the required region (so "nothing fits anywhere" reports the resources
//     message, not the region message). The first filter that rejects a node
//     records why in the node's Explanation.
//  2. A scorer for the request's strategy (spread, best_fit, affinity,
//     round_robin) ranks the nodes that passed every filter.
//
// When nothing passes, Place returns the Decision (with every explanation)
// together with an error; match it with errors.Is against the sentinels in
// errors.go (the compute API words them for its callers).
package placement
