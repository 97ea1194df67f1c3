// Package metrics is the scheduler's Prometheus instrumentation, served
// unauthenticated on /metrics (as the compute service's was). Counters and
// histograms are updated where things happen (placement, agent calls);
// gauges of state (workspaces by status, server health, gossip members) are
// read from their owners at scrape time, so they can never drift.
package metrics
