// Package orchestrator is the scheduler's write path for workspaces. It is
// built from three parts that share one core (registry, agent clients,
// fleet view, one lock per workspace):
//
//   - Placer (placer.go): where a workspace runs. Create and the move of a
//     workspace to another server (restart of a lost or draining one) both
//     go through one launch: placement ranks the servers, the registry
//     reserves on a candidate in one transaction, the agent creates and
//     starts the container; an agent failure releases the reservation,
//     removes a container the agent may have made when its answer was lost,
//     records why and tries the next candidate.
//   - Lifecycle (lifecycle.go, scale.go): what happens to a placed
//     workspace: stop, restart, delete, mark for deletion, exec, status
//     sync, scale, and the eviction of a server's workspaces; and the
//     streams through its agent, which take no lock: the preview proxy and
//     the WebSocket dial to its apps (proxy.go), and terminals attached to
//     tmux sessions (terminal.go).
//   - Reconciler (reconciler.go): what berth learns afterwards: agents'
//     container events, the periodic comparison of registry and containers
//     (adoption, vanished containers, orphans), lost servers and the
//     pending-deletion cleanup. Run(ctx) owns its loops.
//
// Every operation that changes a workspace takes that workspace's lock
// (locks.go) for its whole length, so a create, a move, a scale, a stop or
// a delete of one workspace never interleave; background work (events,
// reconciliation, cleanup) only tries the lock and leaves a workspace that
// someone is changing to the next round.
//
// Errors are sentinels and typed errors (errors.go) that say what happened;
// the HTTP layers word them for their callers.
package orchestrator
