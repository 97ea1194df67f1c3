// Package server is the agent's mTLS HTTP API (echo): the only way into an
// agent. The scheduler is its only client: every request must present a
// certificate of the cluster CA carrying the scheduler role (shared/mtls).
//
// It sits between the scheduler's agent client and the Docker adapter, whose
// needs it lists in its own Docker interface: agent/internal/docker in the
// agent binary, the in-memory dockerfake in tests (agent/agenttest serves
// this very Server over it). Handlers are thin: they decode the wire type
// strictly (unknown fields are a 400), call the adapter, and encode the
// answer. Errors go through the one HTTPErrorHandler, the only place that
// maps the adapter's sentinel errors to status codes and wire error codes.
//
// Per-container routes pass the epoch fence first: a request whose
// X-Berth-Epoch is older than the container's berth.epoch label comes from
// a superseded placement and is refused with 409 stale_epoch. Every
// request also renews LastContact, which the agent's fence (agent/internal/
// fence) reads.
//
// Streams (exec output, image pull progress, container events) are NDJSON,
// flushed line by line, so output reaches the scheduler as it is produced.
// The raw exec (execraw.go, wire design in shared/wire/execraw.go) takes the
// request body as the process's input and answers its output in frames,
// for transfers of any size with bounded memory.
//
// Two routes are interactive streams, one mTLS connection per user stream
// (wire protocol in shared/wire/streams.go): /tty upgrades to a WebSocket
// carrying a TTY exec (tty.go), /proxy/{port}/… reverse-proxies HTTP and
// WebSocket upgrades to the container's bridge address (proxy.go); no
// container port is ever published. Both are bounded (StreamConfig): a TTY
// write blocked on a scheduler that stopped reading ends the stream, proxied
// requests are capped per container, connections to apps time out when
// idle. Shutdown ends them: http.Server.Shutdown does not end hijacked
// connections, so Serve does (streams.go).
//
// A Server is safe for concurrent use; Serve owns the HTTP server until its
// context ends.
package server
