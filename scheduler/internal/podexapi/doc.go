// Package podexapi makes the scheduler's calls to the podex API service
// (contract §7), the peer berth replaces the Python compute service for. It
// is active only when COMPUTE_API_BASE_URL is set; without it berth runs
// alone (built-in tiers, no reverse calls, no billing).
//
// One Client makes every call: each attempt is bounded by a timeout (10 s);
// no answer, 5xx, 408 and 429 are tried again with exponential backoff and
// jitter (0.5 s doubling to 10 s, plus up to 50 %, the podex API's own
// client policy; a Retry-After is honoured); 404 and other 4xx are final.
// Every call is counted by operation and outcome (Observer: the metrics).
// Calls authenticate as §7 says: X-Internal-Service-Token on the server
// list, server heartbeats and status sync, Authorization: Bearer on the
// hardware specs and usage records, both with INTERNAL_SERVICE_TOKEN.
//
// Around the client, the loops of the peer, each owned by its Run:
//
//   - ServerSync: GET /api/servers/internal/list[?region=] at start and
//     every 30 s, applied with registry.SyncAPIServers (new servers
//     registered, listed fields updated, a server no longer listed
//     cordoned — never deleted — and active again when listed again). A
//     list that cannot be had changes nothing.
//   - Catalog: GET /api/billing/hardware-specs at start and every 5 min;
//     the stale answer stays when a fetch fails, and the built-in table
//     serves until the first answer. It is the orchestrator's tier
//     catalogue, so create, scale-options and scale read the same specs.
//   - Heartbeats: POST /api/servers/{id}/heartbeat?used_cpu=&used_memory_mb=
//     &used_disk_gb=&active_workspaces= every 30 s, only for a server whose
//     probes pass and whose agent answers then, with what it measured then.
//   - StatusSync: POST /api/workspaces/{id}/internal/sync-status on every
//     status change (orchestrator.Notifier), coalesced per workspace.
//
// Usage records (POST /api/billing/usage/record) are sent by package
// billing through Client.RecordUsage.
//
// podexapitest holds a fake podex API that enforces these shapes, for the
// unit and end-to-end tests.
package podexapi
