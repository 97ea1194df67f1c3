package wire

import "time"

// Agent API paths, all served over mTLS under /v1.
const (
	PathHealth     = "/v1/health"
	PathCapacity   = "/v1/capacity"
	PathInfo       = "/v1/info"
	PathContainers = "/v1/containers"
	PathImages     = "/v1/images"
	PathImagePull  = "/v1/images/pull"
	PathEvents     = "/v1/events"
	PathData       = "/v1/data" // DELETE ?path=<relative to the data dir>
)

// HeaderEpoch carries the fencing epoch of the placement a request acts for.
const HeaderEpoch = "X-Berth-Epoch"

// Health is the agent's answer on PathHealth.
type Health struct {
	Status   string    `json:"status"` // "ok" or "degraded"
	ServerID string    `json:"server_id"`
	Version  string    `json:"version"`
	DockerOK bool      `json:"docker_ok"`
	Error    string    `json:"error,omitempty"`
	Time     time.Time `json:"time"`
	// EventSeq is the number of the agent's latest container event
	// (EventLog.Seq); 0 from an agent without an event log.
	EventSeq uint64 `json:"event_seq,omitempty"`
}

// Capacity is what an agent measures of its host (gopsutil + Docker).
type Capacity struct {
	ServerID          string    `json:"server_id"`
	Architecture      string    `json:"architecture"` // GOARCH-style: amd64, arm64
	CPUCores          int       `json:"cpu_cores"`
	CPUPercent        float64   `json:"cpu_percent"` // whole-host use, 0..100
	Load1             float64   `json:"load1"`
	Load5             float64   `json:"load5"`
	MemoryTotalMB     int64     `json:"memory_total_mb"`
	MemoryAvailableMB int64     `json:"memory_available_mb"`
	DiskTotalGB       float64   `json:"disk_total_gb"` // of Docker's data root
	DiskFreeGB        float64   `json:"disk_free_gb"`
	DiskPath          string    `json:"disk_path"`
	Containers        int       `json:"containers"`         // all containers of the local dockerd
	ContainersRunning int       `json:"containers_running"` // running ones
	Images            int       `json:"images"`
	Workspaces        int       `json:"workspaces"` // berth-labelled containers
	ReservedCPU       float64   `json:"reserved_cpu"`
	ReservedMemoryMB  int64     `json:"reserved_memory_mb"`
	GPUType           string    `json:"gpu_type,omitempty"`
	GPUCount          int       `json:"gpu_count,omitempty"`
	SampledAt         time.Time `json:"sampled_at"`
}

// DockerInfo is the subset of the daemon's facts the scheduler shows
// (contract §4.1 docker_info).
type DockerInfo struct {
	ServerVersion string `json:"server_version"`
	OS            string `json:"os"`
	Architecture  string `json:"architecture"`
	Containers    int    `json:"containers"`
	Images        int    `json:"images"`
	MemoryTotal   int64  `json:"memory_total"` // bytes
	CPUs          int    `json:"cpus"`
	DataRoot      string `json:"data_root"`
}

// Mount binds a directory under the agent's data directory into a container.
// Source is relative to the agent's data directory; the agent refuses any path
// that escapes it.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Fresh: the source must start empty; whatever is there is removed
	// first (a new home, which must never inherit the directory of a
	// forgotten workspace of the same id).
	Fresh bool `json:"fresh,omitempty"`
	// QuotaGB, when positive, caps the mount's size: the agent backs the
	// directory with a file system of that size where the host allows it
	// (SandboxReport.DiskQuota says whether it did).
	QuotaGB int64 `json:"quota_gb,omitempty"`
}

// Resources are a container's limits.
type Resources struct {
	CPU      float64 `json:"cpu"`       // cores; NanoCPUs = CPU*1e9
	MemoryMB int64   `json:"memory_mb"` // hard limit
}

// CreateContainerRequest asks an agent to create (and optionally start) a
// workspace container. The agent adds berth's labels itself and refuses
// privileged mode, host namespaces and mounts outside its data directory.
type CreateContainerRequest struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Cmd         []string          `json:"cmd,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	Resources   Resources         `json:"resources"`
	GPU         *GPURequest       `json:"gpu,omitempty"` // GPUs to expose; nil = none
	User        string            `json:"user,omitempty"`
	WorkingDir  string            `json:"working_dir,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Runtime     string            `json:"runtime,omitempty"`
	Start       bool              `json:"start"`
	WorkspaceID string            `json:"workspace_id,omitempty"`
	Epoch       int64             `json:"epoch,omitempty"`

	// The sandbox (sandbox.go). Limits: zero fields take the agent's
	// defaults. CapAdd beyond the agent's minimum, limits.processes -1, a
	// runtime other than runsc where runsc works, or network_mode "bridge"
	// are refused unless SandboxExceptions names the matching exception.
	Limits            ProcessLimits `json:"limits,omitzero"`
	CapAdd            []string      `json:"cap_add,omitempty"`
	SandboxExceptions []string      `json:"sandbox_exceptions,omitempty"`

	// Forbidden: present so that a request asking for them is refused with a
	// clear message instead of being silently ignored.
	Privileged  bool   `json:"privileged,omitempty"`
	NetworkMode string `json:"network_mode,omitempty"` // "" or "bridge"; "host" is refused
	PidMode     string `json:"pid_mode,omitempty"`     // "host" is refused
	IpcMode     string `json:"ipc_mode,omitempty"`     // "host" is refused
}

// GPURequest exposes GPUs to a container through Docker's device requests
// (the NVIDIA container toolkit on the host).
type GPURequest struct {
	Count        int      `json:"count"`        // GPUs; -1 = all of the host's
	Capabilities []string `json:"capabilities"` // e.g. gpu, compute, utility
}

// Container is the agent's view of one berth container.
type Container struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Image      string            `json:"image"`
	State      string            `json:"state"`  // Docker state: created, running, exited, dead, paused, restarting, removing
	Status     string            `json:"status"` // Docker's human status
	ExitCode   int               `json:"exit_code"`
	OOMKilled  bool              `json:"oom_killed"`
	Labels     map[string]string `json:"labels"`
	Resources  Resources         `json:"resources"`
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  time.Time         `json:"started_at,omitzero"`
	FinishedAt time.Time         `json:"finished_at,omitzero"`
	IPAddress  string            `json:"ip_address,omitempty"`
	// Sandbox: set on the answer to a create only.
	Sandbox *SandboxReport `json:"sandbox,omitempty"`
}

// StopRequest stops a container with a grace period.
type StopRequest struct {
	TimeoutSeconds int `json:"timeout_seconds"`
}

// ExecRequest runs a command in a container. Stdout and stderr are kept
// apart; when TimeoutSeconds passes the process is killed and TimedOut set.
type ExecRequest struct {
	Cmd            []string          `json:"cmd"`
	User           string            `json:"user,omitempty"`
	WorkingDir     string            `json:"working_dir,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	Stdin          []byte            `json:"stdin,omitempty"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty"`
}

// ExecResult is the outcome of a non-streaming exec. Each stream keeps at
// most ExecOutputLimit bytes; StdoutDropped and StderrDropped count the
// bytes of output beyond it, which were dropped (never silently: the
// compute API marks the cut).
type ExecResult struct {
	ExitCode      int    `json:"exit_code"`
	Stdout        []byte `json:"stdout"`
	Stderr        []byte `json:"stderr"`
	TimedOut      bool   `json:"timed_out"`
	StdoutDropped int64  `json:"stdout_dropped,omitempty"`
	StderrDropped int64  `json:"stderr_dropped,omitempty"`
}

// ExecOutputLimit is how much of each output stream a non-streaming exec
// returns.
const ExecOutputLimit = 16 << 20

// ExecFrame is one line of a streaming exec answer (NDJSON): output chunks
// as the process writes them, then one final frame with Exit set.
type ExecFrame struct {
	Stream   string `json:"stream,omitempty"` // "stdout" or "stderr"
	Data     []byte `json:"data,omitempty"`
	Exit     bool   `json:"exit,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ContainerStats is one sample of a container's resource use.
type ContainerStats struct {
	CPUPercent    float64   `json:"cpu_percent"`
	CPULimitCores float64   `json:"cpu_limit_cores"`
	MemoryUsedMB  int64     `json:"memory_used_mb"`
	MemoryLimitMB int64     `json:"memory_limit_mb"`
	MemoryPercent float64   `json:"memory_percent"`
	DiskReadMB    float64   `json:"disk_read_mb"`
	DiskWriteMB   float64   `json:"disk_write_mb"`
	NetworkRxMB   float64   `json:"network_rx_mb"`
	NetworkTxMB   float64   `json:"network_tx_mb"`
	UptimeSeconds int64     `json:"container_uptime_seconds"`
	CollectedAt   time.Time `json:"collected_at"`
}

// Image is one image of the agent's local dockerd.
type Image struct {
	ID      string    `json:"id"`
	Tags    []string  `json:"tags"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// PullRequest pulls an image into the agent's dockerd.
type PullRequest struct {
	Image string `json:"image"`
	Tag   string `json:"tag,omitempty"`
}

// PullProgress is one NDJSON line of a pull's progress; the last line has
// Done set, and Error when the pull failed.
type PullProgress struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	Progress string `json:"progress,omitempty"`
	Done     bool   `json:"done,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ContainerEvent is one NDJSON line of the agent's event stream: a Docker
// event about a berth container.
type ContainerEvent struct {
	ContainerID string            `json:"container_id"`
	WorkspaceID string            `json:"workspace_id,omitempty"`
	Action      string            `json:"action"` // start, die, oom, destroy, stop, kill, pause, unpause, create
	ExitCode    int               `json:"exit_code,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Time        time.Time         `json:"time"`
}
