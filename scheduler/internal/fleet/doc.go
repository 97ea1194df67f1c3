// Package fleet is the scheduler's vocabulary and the decisions every other
// package shares: a server's admin State and its Health, a workspace's
// Status, an amount of Resources, whether a request Fits what a server has
// left, and whether a server is Usable (serves its workspaces) or
// Schedulable (takes new ones).
//
// Each of these decisions is made here and only here: placement filters
// with them, the registry checks a reservation with them inside its write
// transaction, scale-options and scale judge a tier change with them, and
// the admin API shows servers with them. The package is pure: no I/O, no
// clock, no logger. Messages for people are the callers' (a Shortfall
// carries the numbers; placement, the registry and the compute API each
// word it their own way).
package fleet
