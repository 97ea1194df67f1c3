// Package podexapi makes the scheduler's reverse calls to the podex API
// service (contract §7), when COMPUTE_API_BASE_URL is set. Today: workspace
// status sync, sent on change only. Updates are coalesced per workspace
// (only the latest status of each is kept) and sent by one goroutine, so a
// slow API never holds up the scheduler and never receives stale news.
package podexapi
