// Package docker is the agent's adapter to its local Docker daemon and the
// only package of berth that imports the Docker SDK.
//
// It sits between the agent's workspace layer (lifecycle, exec, files,
// events, reconcile) and dockerd: callers speak shared/wire types, this
// package speaks the Docker API over the local unix socket only (a TCP
// Docker endpoint is refused at construction).
//
// Ownership: the agent owns only the containers it created, recognised by the
// label berth.managed=true. Every per-container method inspects the container
// first and answers ErrNotFound for a container without that label, so an
// agent can never stop, exec into or remove something it did not make.
//
// Create validates before touching Docker: privileged mode, host (or
// container:) network, PID and IPC namespaces, and bind mounts whose source
// leaves the data directory (by "..", by an absolute path or through a
// symlink) are refused with ErrBadRequest.
//
// Errors are the sentinels of errors.go, always wrapped with %w and a
// message: ErrBadRequest, ErrNotFound, ErrConflict, ErrImageNotFound,
// ErrTimeout and ErrDocker for any other daemon failure.
//
// Concurrency: a *Client is safe for concurrent use; it holds no mutable
// state besides the SDK client, which is itself safe for concurrent use.
package docker
