package capacity

import "errors"

// Sentinel errors, always wrapped with %w and the failing measurement.
var (
	// ErrHost: a host measurement (CPU, memory, load, disk, architecture)
	// failed.
	ErrHost = errors.New("host measurement failed")
	// ErrDocker: the Docker facts could not be read.
	ErrDocker = errors.New("docker facts unavailable")
)
