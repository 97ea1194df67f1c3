// Package docker is the agent's adapter to its local Docker daemon and the
// only package of berth that imports the Docker SDK.
//
// It sits between the agent's API (agent/internal/server), capacity sampler
// and fence on one side and dockerd on the other: callers speak shared/wire
// types, this package speaks the Docker API over the local unix socket only
// (a TCP Docker endpoint is refused at construction). It calls the SDK
// through dockerAPI (sdk.go), the list of exactly the SDK methods it uses,
// so its failure paths are unit-tested over a hand-written stub; the
// integration tests run it against the machine's real dockerd.
//
// Ownership: the agent owns only the containers it created, recognised by the
// label berth.managed=true. Every per-container method inspects the container
// first and answers ErrNotFound for a container without that label, so an
// agent can never stop, exec into or remove something it did not make.
//
// What a request may ask for is decided in validate.go, without Docker or
// the file system, and exported so that the in-memory fake (dockerfake)
// applies the same rules: privileged mode, host (or container:) network,
// PID and IPC namespaces, and mounts whose source leaves the data directory
// are refused with ErrBadRequest. Create then also refuses a mount that
// leaves the data directory through a symlink, before anything is made.
//
// Interactive work: ExecTTY starts a process on a terminal and hands back the
// hijacked connection of the exec (TTY), which hangs the process up when
// closed; Address gives the container's bridge address for the agent's
// proxy (tty.go).
//
// Errors are the sentinels of errors.go, always wrapped with %w and a
// message: ErrBadRequest, ErrNotFound, ErrConflict, ErrImageNotFound,
// ErrStartFailed, ErrTimeout and ErrDocker for any other daemon failure.
//
// Concurrency: a *Client is safe for concurrent use; it holds no mutable
// state besides the SDK client, which is itself safe for concurrent use.
package docker
