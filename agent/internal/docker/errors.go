package docker

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (with %w), plus the underlying SDK error where there is one.
var (
	// ErrBadRequest: the request is malformed or asks for something the
	// agent refuses (privileged mode, host namespaces, a mount escaping the
	// data directory, ...).
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: no such container (or not a berth container), exec or
	// file.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name is in use, or the container is not in a state
	// that allows the operation (e.g. exec into a stopped container).
	ErrConflict = errors.New("conflict")
	// ErrImageNotFound: the image is not present in the local daemon.
	ErrImageNotFound = errors.New("image not found")
	// ErrStartFailed: Create made the container but it would not start; it
	// has been removed again.
	ErrStartFailed = errors.New("container would not start")
	// ErrTimeout: the daemon did not answer before the context's deadline.
	ErrTimeout = errors.New("timeout")
	// ErrDocker: any other failure of the local dockerd.
	ErrDocker = errors.New("docker error")
)
