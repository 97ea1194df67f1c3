// Package gossip is berth's glue over hashicorp/memberlist: one encrypted,
// labelled pool in which every agent publishes its NodeMeta (capacity,
// address, region) and the scheduler listens as an observer.
//
// A Pool is safe for concurrent use. Membership changes are kept in a view
// (Members) that also remembers nodes that died or left, and are fanned out to
// subscribers (Subscribe) for the scheduler's health tracking.
package gossip
