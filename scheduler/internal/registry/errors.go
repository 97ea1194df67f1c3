package registry

import "errors"

// Sentinel errors. Functions wrap them with %w and add the ids involved, so
// callers test with errors.Is and never look at the message.
var (
	// ErrNotFound: the server, workspace or row named does not exist.
	ErrNotFound = errors.New("not found")

	// ErrConflict: a server with the same id or name is already registered.
	ErrConflict = errors.New("conflict")

	// ErrExists: the workspace id is already taken (ReserveAndInsert); the
	// existing row can be read with GetWorkspace. Backup also returns it when
	// the destination file is already there.
	ErrExists = errors.New("already exists")

	// ErrOwnedByOther: the workspace id (its record or its home directory,
	// which outlives the record) belongs to another user.
	ErrOwnedByOther = errors.New("owned by another user")

	// ErrInsufficientCapacity: the reservations already held on the server plus
	// the request exceed one of the caller's limits.
	ErrInsufficientCapacity = errors.New("insufficient capacity")

	// ErrServerNotActive: a placement (ReserveAndInsert, MoveWorkspace) named a
	// server whose state is draining or cordoned.
	ErrServerNotActive = errors.New("server not active")

	// ErrServerInUse: DeleteServer on a server that still has workspace rows.
	ErrServerInUse = errors.New("server has workspaces")

	// ErrInvalid: an argument is malformed (empty id, unknown status, negative
	// resources, an immutable field changed in UpdateWorkspace, bad JSON).
	ErrInvalid = errors.New("invalid argument")
)
