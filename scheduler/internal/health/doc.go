// Package health keeps one state machine per server — healthy, degraded,
// unhealthy, unreachable, unknown — fed by two independent signals:
// gossip (memberlist declares a silent agent suspect, then dead, within about
// a second on a LAN) and jittered mTLS probes of each agent's health
// endpoint. Placement reads the current state through Health; every
// transition is written to the registry with its reason, which records an
// event.
//
// Rules, first match wins:
//   - gossip says the agent is dead or left          → unreachable
//   - FailThreshold probes in a row could not connect → unreachable
//   - FailThreshold probes in a row failed otherwise  → unhealthy
//   - the agent answers but its dockerd does not      → unhealthy
//   - real CPU or memory use above DegradedPercent    → degraded
//   - no probe has succeeded yet                      → unknown
//   - otherwise                                       → healthy
//
// A Tracker is safe for concurrent use; Run owns its goroutines.
package health
