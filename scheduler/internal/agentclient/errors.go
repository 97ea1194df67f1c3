package agentclient

import (
	"errors"
	"fmt"

	"berth/shared/wire"
)

// Sentinels for agent answers and transport failures.
var (
	ErrBadRequest    = errors.New("agent refused the request")
	ErrNotFound      = errors.New("not found on agent")
	ErrImageNotFound = errors.New("image not found on agent")
	ErrStartFailed   = errors.New("container would not start")
	ErrConflict      = errors.New("conflict on agent")
	ErrStaleEpoch    = errors.New("stale placement epoch")
	ErrTimeout       = errors.New("agent operation timed out")
	ErrDocker        = errors.New("docker error on agent")
	ErrUnavailable   = errors.New("agent unavailable")
	ErrUnreachable   = errors.New("agent unreachable")
	ErrAgent         = errors.New("agent error")
)

// Error is an error answer of the agent.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("agent %d %s: %s", e.Status, e.Code, e.Message)
}

// Is maps the wire code to this package's sentinels.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case wire.CodeBadRequest, wire.CodeForbidden:
		return target == ErrBadRequest
	case wire.CodeNotFound:
		return target == ErrNotFound
	case wire.CodeNoImage:
		return target == ErrImageNotFound
	case wire.CodeStartFailed:
		return target == ErrStartFailed
	case wire.CodeConflict:
		return target == ErrConflict
	case wire.CodeStaleEpoch:
		return target == ErrStaleEpoch || target == ErrConflict
	case wire.CodeTimeout:
		return target == ErrTimeout
	case wire.CodeDocker:
		return target == ErrDocker
	case wire.CodeUnavailable:
		return target == ErrUnavailable
	}
	return target == ErrAgent
}
