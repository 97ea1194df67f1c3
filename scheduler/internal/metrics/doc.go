// Package metrics is the scheduler's Prometheus instrumentation, served on
// /metrics: open by default (as the compute service's was), or behind a
// bearer token with BERTH_METRICS_TOKEN (RequireToken). Counters and
// histograms are updated where things happen (placement, agent calls,
// podex API calls, acknowledged usage events); gauges of state (workspaces
// by status, server health, gossip members, the billing outbox) are
// read from their owners at scrape time, so they can never drift.
package metrics
