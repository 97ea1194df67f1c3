package wire

// The workspace sandbox (README "Security"): what a create request may ask
// of it and what the agent answers. The agent applies the sandbox to every
// container it makes; a request can only weaken it by naming an exception,
// which the agent logs and reports.

// ProcessLimits are a container's process and file limits (per tier, decided
// by the scheduler's tiers package). A zero field takes the agent's default.
type ProcessLimits struct {
	// Processes caps the tasks (processes and threads) of the workspace:
	// the PIDs cgroup under runc, RLIMIT_NPROC inside the sandbox's own
	// kernel under runsc. -1 = no limit, refused without ExceptNoProcessLimit.
	Processes int64 `json:"processes,omitempty"`
	// OpenFiles is RLIMIT_NOFILE (soft = hard).
	OpenFiles int64 `json:"open_files,omitempty"`
}

// MinProcessLimits are the smallest limits a workspace gets: the floor of
// every tier (scheduler/internal/tiers) and what the agent applies to a
// request that leaves them zero.
var MinProcessLimits = ProcessLimits{Processes: 1024, OpenFiles: 65536}

// Sandbox exceptions: each lets one create weaken one part of the sandbox.
// Anything else in CreateContainerRequest.SandboxExceptions is refused.
const (
	ExceptCapabilities   = "capabilities"     // cap_add beyond the sandbox's minimum
	ExceptNewPrivileges  = "new_privileges"   // no no-new-privileges: setuid binaries (sudo) work
	ExceptNoProcessLimit = "no_process_limit" // limits.processes = -1
	ExceptRunc           = "runc"             // another runtime than runsc where runsc is available
	ExceptSharedNetwork  = "shared_network"   // network_mode "bridge": Docker's shared default bridge
)

// SandboxExceptions lists every exception a request may name.
var SandboxExceptions = []string{ExceptCapabilities, ExceptNewPrivileges, ExceptNoProcessLimit, ExceptRunc, ExceptSharedNetwork}

// SandboxReport is what the agent made of a create's sandbox.
type SandboxReport struct {
	Runtime   string `json:"runtime"`    // runsc or runc
	Network   string `json:"network"`    // the Docker network the container is on
	Egress    string `json:"egress"`     // open or none
	DiskQuota string `json:"disk_quota"` // "20 GB (loop ext4)" or "none: <why>"
	// Exceptions are the weakenings the request asked for and got.
	Exceptions []string `json:"exceptions,omitempty"`
	// Degraded lists what the host could not apply, with why (runc instead
	// of runsc, no disk quota); the scheduler records it as an event.
	Degraded []string `json:"degraded,omitempty"`
}
