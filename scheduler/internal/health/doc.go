// Package health keeps one state machine per server — healthy, degraded,
// unhealthy, unreachable, unknown — fed by two independent signals:
// gossip (memberlist declares a silent agent suspect, then dead, within about
// a second on a LAN; each agent's metadata carries its CPU and memory use,
// whether its dockerd answers and the number of its latest container event)
// and jittered mTLS probes of each agent's health endpoint. A server is
// probed every ProbeInterval (1 s) while gossip says nothing fresh about it
// (gossip off, not an alive member, metadata that does not decode, or its
// last probe failed), and every SlowProbeInterval (5 s) while gossip vouches
// for it — or further apart in a fleet larger than SlowProbeInterval ×
// ProbeRate (250 servers), so that these probes stay at ProbeRate (50) a
// second in all: every 200 s at 10,000 servers, each on a connection of its
// own that it closes (nothing is kept open per server). What gossip cannot
// say (the mTLS API answers, with its server's certificate) is still
// checked, and the probes cost little at any fleet size.
// Placement reads the current state through Health; every transition is
// written to the registry with its reason, which records an event.
//
// Rules, first match wins:
//   - gossip says the agent is dead or left          → unreachable
//   - FailThreshold probes in a row could not connect → unreachable
//   - FailThreshold probes in a row failed otherwise  → unhealthy
//   - no probe has succeeded yet                      → unknown
//   - the agent answers but its dockerd does not      → unhealthy
//     (the newer of its last probe answer and its gossip metadata says so)
//   - real CPU or memory use above DegradedPercent    → degraded
//   - otherwise                                       → healthy
//
// The Watcher delivers the agents' container events to the orchestrator
// without holding a stream open per agent: the Tracker passes on each
// agent's latest event number (from gossip or a probe's answer) and the
// watcher fetches the events after its cursor when the number moves.
//
// The Tracker and the Watcher are safe for concurrent use; Run owns their
// goroutines.
package health
