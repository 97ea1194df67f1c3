// Package server is the agent's mTLS HTTP API (echo). The scheduler is its
// only client: every request must present a certificate of the cluster CA
// carrying the scheduler role (shared/mtls). Handlers are thin: they decode
// the wire type, call the Docker adapter, and encode the answer; errors go
// through the one HTTPErrorHandler, the only place that maps the adapter's
// sentinel errors to status codes and wire error codes.
//
// Streams (exec output, image pull progress, container events) are NDJSON,
// flushed line by line, so output reaches the scheduler as it is produced.
package server
