// Package admin serves the operators' side of the scheduler.
//
// Under /admin, behind the admin token (a bearer token or an X-Admin-Token
// header, compared in constant time; it is separate from the podex service
// token) or a panel session: signing in with the token starts a
// server-side session (session.go) whose random id is the berth_admin
// cookie; a state-changing call with the cookie must carry the session's
// CSRF token and come from the panel's origin (csrf.go). The sign-in form is
// bounded and failed sign-ins are rate-limited (signin.go). RegisterAdmin
// mounts all of /admin, on a listener of its own when the scheduler has one:
//
//   - the admin API: server CRUD with validation (a new server's agent must
//     answer over mTLS with a certificate naming the server id), drain and
//     capacity overrides, live host stats from the agent, cluster totals,
//     the event log, the gossip view with the agents that gossip but are not
//     registered ("discovered"), and placement dry runs;
//   - the admin panel (/admin/ui): html/template pages and a small script
//     embedded in the binary, kept live by a server-sent event stream of
//     Overview snapshots.
//
// Behind the service token, the podex API's server-management routes
// (contract §4: /servers/test-connection, /servers/{id}/images[/pull]),
// where an agent stands in for podex's Docker daemon; RegisterService mounts
// them beside the compute API. Addresses that are only checked
// (test-connection, a server being added) go through the agent client's
// shared probe transport, which holds nothing per address.
//
// It sits beside the compute API: it reads the fleet through the
// orchestrator's snapshot (the same view placement uses) and judges servers
// with the fleet package (Usable, Schedulable), writes servers through the
// registry, removes a server's workspaces only through the orchestrator
// (EvictServer, which takes each workspace's lock), and reaches agents
// through the agent client. A placement dry run words its failure as a
// create would (computeapi.PlacementDetail). Errors
// become HTTP statuses in one place (errors.go). An API is safe for
// concurrent use.
package admin
