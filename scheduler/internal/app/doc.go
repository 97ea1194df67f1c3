// Package app wires the scheduler together: the SQLite registry, the gossip
// observer, the agent dialer, the orchestrator, health tracking, and one echo
// server carrying the compute API, the admin API and the panel. main parses
// configuration and calls Run; nothing else here reads the environment.
package app
