package docker

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"
)

// The workspace sandbox: what every container the agent makes gets, unless
// the request names an exception (wire.SandboxExceptions), which is logged
// and reported. README "Workspace sandbox" lists each guarantee with its test.

// MinimalCaps is every capability a workspace keeps (CapDrop ALL, then
// these). Workspace processes run as dev (uid 1000) under
// no-new-privileges, so they never hold any of them; they matter only to a
// custom image that runs as root, and are what such a dev image needs:
//
//	CHOWN, DAC_OVERRIDE, FOWNER, FSETID  package installs (dpkg) write files owned by others and set their owners and modes
//	SETUID, SETGID                       drop to another user (apt's _apt, su, daemons that lower their privileges)
//	KILL                                 signal processes of other users in the workspace (stop a daemon that dropped privileges)
//	NET_BIND_SERVICE                     dev servers on ports below 1024 (80, 443)
//
// Gone, among others: NET_RAW (raw sockets, ARP/ICMP spoofing), MKNOD
// (device nodes), SYS_CHROOT, SETFCAP, SETPCAP, AUDIT_WRITE.
var MinimalCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"}

// Runtimes.
const (
	RuntimeRunsc = "runsc"
	RuntimeRunc  = "runc"
)

// Under runsc's ptrace platform every task of the sandbox is backed by host
// threads (measured: 200 sleeping processes held 2062 host PIDs), and the
// sandbox dies, not just the fork, when the host's PIDs cgroup is full. So
// under runsc the task limit is RLIMIT_NPROC, counted by the sandbox's own
// kernel, and the PIDs cgroup is a host-side safety net above it.
const (
	runscPidsPerTask = 16
	runscPidsBase    = 512
)

// Egress policies (BERTH_EGRESS).
const (
	EgressOpen = "open" // workspaces reach the internet (NAT through the host)
	EgressNone = "none" // an internal network: no route out of the host
)

// Workspace networks the agent makes: bridges with inter-container traffic
// off, so workspaces on one host cannot reach each other.
const (
	NetworkOpen     = "berth-workspaces"
	NetworkInternal = "berth-workspaces-internal"
)

// HostSandbox is what this host can do, decided once at start (Probe) and
// then applied to every create.
type HostSandbox struct {
	Runsc     bool   // dockerd has a working runsc runtime
	RunscNote string // why not, when not
	Egress    string // EgressOpen or EgressNone
	Quota     bool   // the home can be a loop-mounted file system of storage_gb
	QuotaNote string // why not, when not
	// MaxOpenFiles is the host's hard RLIMIT_NOFILE (the agent's own, as
	// dockerd's): a container cannot be given more without
	// CAP_SYS_RESOURCE, so open_files is capped at it; 0 = unknown.
	MaxOpenFiles int64
}

// Network is the Docker network workspaces go on under h's egress policy.
func (h HostSandbox) Network() string {
	if h.Egress == EgressNone {
		return NetworkInternal
	}
	return NetworkOpen
}

// DefaultHostSandbox is a host that has not been probed: runc, open egress,
// no quotas.
func DefaultHostSandbox() HostSandbox {
	return HostSandbox{RunscNote: "runsc not probed", Egress: EgressOpen, QuotaNote: "disk quotas not probed",
		MaxOpenFiles: hardNoFile()}
}

// hardNoFile is this process's hard RLIMIT_NOFILE, 0 if unknown.
func hardNoFile() int64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Max > math.MaxInt64 {
		return 0
	}
	return int64(r.Max)
}

// validateSandbox refuses, with ErrBadRequest, a request that would weaken
// the sandbox without naming the matching exception, or names an unknown
// one. It needs no host facts (the runtime is checked by sandboxFor).
func validateSandbox(req wire.CreateContainerRequest) error {
	for _, e := range req.SandboxExceptions {
		if !slices.Contains(wire.SandboxExceptions, e) {
			return fmt.Errorf("%w: unknown sandbox exception %q (known: %s)", ErrBadRequest, e, strings.Join(wire.SandboxExceptions, ", "))
		}
	}
	if extra := extraCaps(req.CapAdd); len(extra) > 0 && !excepted(req, wire.ExceptCapabilities) {
		return fmt.Errorf("%w: cap_add %s is beyond the sandbox's capabilities (%s) and the request has no %q exception",
			ErrBadRequest, strings.Join(extra, ","), strings.Join(MinimalCaps, ","), wire.ExceptCapabilities)
	}
	switch p := req.Limits.Processes; {
	case p == -1 && !excepted(req, wire.ExceptNoProcessLimit):
		return fmt.Errorf("%w: limits.processes -1 (no limit) needs the %q exception", ErrBadRequest, wire.ExceptNoProcessLimit)
	case p < -1:
		return fmt.Errorf("%w: limits.processes %d: want a positive count, 0 for the default or -1 for none", ErrBadRequest, p)
	}
	if req.Limits.OpenFiles < 0 {
		return fmt.Errorf("%w: limits.open_files %d must not be negative", ErrBadRequest, req.Limits.OpenFiles)
	}
	switch strings.ToLower(strings.TrimSpace(req.NetworkMode)) {
	case "":
	case "bridge", "default":
		if !excepted(req, wire.ExceptSharedNetwork) {
			return fmt.Errorf("%w: network_mode %q is Docker's shared bridge, where workspaces reach each other; it needs the %q exception",
				ErrBadRequest, req.NetworkMode, wire.ExceptSharedNetwork)
		}
	case "none":
	default:
		return fmt.Errorf("%w: network_mode %q: workspaces run on berth's workspace network (leave it empty), or none", ErrBadRequest, req.NetworkMode)
	}
	for _, m := range req.Mounts {
		if m.QuotaGB < 0 {
			return fmt.Errorf("%w: mount %s: quota_gb %d must not be negative", ErrBadRequest, m.Target, m.QuotaGB)
		}
	}
	return nil
}

// extraCaps are the capabilities of caps beyond MinimalCaps, normalised
// (upper case, no CAP_ prefix).
func extraCaps(caps []string) []string {
	var extra []string
	for _, c := range caps {
		n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
		if !slices.Contains(MinimalCaps, n) {
			extra = append(extra, n)
		}
	}
	return extra
}

func excepted(req wire.CreateContainerRequest, e string) bool {
	return slices.Contains(req.SandboxExceptions, e)
}

// sandboxFor decides the runtime, network and limits of req on host h, and
// fills hostCfg's sandbox fields. It refuses (ErrBadRequest) a runtime other
// than runsc where runsc works, unless excepted. The report's DiskQuota is
// left to Create, which makes the mounts.
func sandboxFor(req wire.CreateContainerRequest, h HostSandbox, hostCfg *container.HostConfig) (wire.SandboxReport, error) {
	rep := wire.SandboxReport{Egress: h.Egress}
	runtime, note, err := pickRuntime(req, h)
	if err != nil {
		return rep, err
	}
	rep.Runtime = runtime
	if note != "" {
		rep.Degraded = append(rep.Degraded, note)
	}
	if runtime != RuntimeRunsc && h.Runsc && req.GPU == nil {
		rep.Exceptions = append(rep.Exceptions, wire.ExceptRunc)
	}
	if runtime != RuntimeRunc { // runc is the daemon's default: leave it unset
		hostCfg.Runtime = runtime
	}

	hostCfg.CapDrop = []string{"ALL"}
	hostCfg.CapAdd = minimalPlus(req.CapAdd)
	if len(extraCaps(req.CapAdd)) > 0 {
		rep.Exceptions = append(rep.Exceptions, wire.ExceptCapabilities)
	}
	if excepted(req, wire.ExceptNewPrivileges) {
		rep.Exceptions = append(rep.Exceptions, wire.ExceptNewPrivileges)
	} else {
		hostCfg.SecurityOpt = []string{"no-new-privileges"}
	}

	procs, files := req.Limits.Processes, req.Limits.OpenFiles
	if procs == 0 {
		procs = wire.MinProcessLimits.Processes
	}
	if files == 0 {
		files = wire.MinProcessLimits.OpenFiles
	}
	if h.MaxOpenFiles > 0 && files > h.MaxOpenFiles {
		rep.Degraded = append(rep.Degraded, fmt.Sprintf("open_files %d capped at the host's hard limit %d", files, h.MaxOpenFiles))
		files = h.MaxOpenFiles
	}
	hostCfg.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: files, Hard: files}}
	switch {
	case procs == -1:
		rep.Exceptions = append(rep.Exceptions, wire.ExceptNoProcessLimit)
	case runtime == RuntimeRunsc:
		// RLIMIT_NPROC inside gVisor is counted by the sandbox's kernel:
		// per workspace. The PIDs cgroup only guards the host.
		hostCfg.Ulimits = append(hostCfg.Ulimits, &container.Ulimit{Name: "nproc", Soft: procs, Hard: procs})
		hostCfg.PidsLimit = int64Ptr(procs*runscPidsPerTask + runscPidsBase)
	default:
		// Under runc RLIMIT_NPROC counts uid 1000's processes across every
		// workspace of the host (no user namespace): one workspace's fork
		// bomb would stop the others' forks. The PIDs cgroup is per
		// container, so it is the limit, and nproc is left alone.
		hostCfg.PidsLimit = int64Ptr(procs)
	}

	switch strings.ToLower(strings.TrimSpace(req.NetworkMode)) {
	case "":
		hostCfg.NetworkMode = container.NetworkMode(h.Network())
	case "none":
		hostCfg.NetworkMode = "none"
		rep.Egress = EgressNone
	default: // the shared bridge, excepted (validateSandbox)
		hostCfg.NetworkMode = "bridge"
		rep.Exceptions = append(rep.Exceptions, wire.ExceptSharedNetwork)
	}
	rep.Network = string(hostCfg.NetworkMode)
	return rep, nil
}

// pickRuntime: "" and runsc mean runsc where it works, else runc with a
// note; GPUs need runc (this gVisor has no GPU support); another runtime
// where runsc works needs the runc exception.
func pickRuntime(req wire.CreateContainerRequest, h HostSandbox) (runtime, note string, err error) {
	asked := strings.TrimSpace(req.Runtime)
	switch {
	case req.GPU != nil && (asked == "" || asked == RuntimeRunsc):
		return RuntimeRunc, "runtime runc: GPU workspaces cannot run under runsc", nil
	case asked == "" || asked == RuntimeRunsc:
		if h.Runsc {
			return RuntimeRunsc, "", nil
		}
		return RuntimeRunc, "runtime runc instead of runsc: " + h.RunscNote, nil
	case h.Runsc && !excepted(req, wire.ExceptRunc) && req.GPU == nil:
		return "", "", fmt.Errorf("%w: runtime %q where runsc is available needs the %q exception", ErrBadRequest, asked, wire.ExceptRunc)
	}
	return asked, "", nil
}

// minimalPlus is MinimalCaps plus the request's extra capabilities.
func minimalPlus(add []string) []string {
	return append(slices.Clone(MinimalCaps), extraCaps(add)...)
}

func int64Ptr(v int64) *int64 { return &v }
