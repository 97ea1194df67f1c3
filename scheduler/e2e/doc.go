// Package e2e holds the end-to-end tests that run against the local compose
// cluster (`make run`): two Docker-in-Docker hosts, each with its own
// dockerd and agent, and the scheduler. They are skipped unless BERTH_E2E=1;
// `make test` brings the cluster up and sets it.
package e2e
