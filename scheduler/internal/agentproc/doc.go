// Package agentproc runs the real agent binary as a child process against
// the machine's real Docker daemon, with a fresh PKI, for the scheduler's
// integration tests and benchmarks.
package agentproc
