package fleet

import (
	"fmt"
	"math"
	"strconv"
)

// Resources is an amount of what a workspace reserves on its server. Zero
// means "none" in a request.
type Resources struct {
	CPU           float64 // cores (vCPUs)
	MemoryMB      int64
	DiskGB        int64
	BandwidthMbps int64
	GPUCount      int
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, MemoryMB: r.MemoryMB + o.MemoryMB, DiskGB: r.DiskGB + o.DiskGB,
		BandwidthMbps: r.BandwidthMbps + o.BandwidthMbps, GPUCount: r.GPUCount + o.GPUCount}
}

// Sub returns r - o; parts may go negative.
func (r Resources) Sub(o Resources) Resources {
	return Resources{CPU: r.CPU - o.CPU, MemoryMB: r.MemoryMB - o.MemoryMB, DiskGB: r.DiskGB - o.DiskGB,
		BandwidthMbps: r.BandwidthMbps - o.BandwidthMbps, GPUCount: r.GPUCount - o.GPUCount}
}

// Unlimited is an amount that every request fits in: what a limit of 0
// ("not set") leaves available.
var Unlimited = Resources{CPU: math.Inf(1), MemoryMB: math.MaxInt64, DiskGB: math.MaxInt64,
	BandwidthMbps: math.MaxInt64, GPUCount: math.MaxInt}

// Resource names one part of Resources.
type Resource string

// The resources, in the order Fits checks them.
const (
	CPU       Resource = "cpu"
	Memory    Resource = "memory"
	Disk      Resource = "disk"
	Bandwidth Resource = "bandwidth"
	GPU       Resource = "gpus"
)

// Shortfall is the first resource a request does not fit in: how much it
// needs and how much is available.
type Shortfall struct {
	Resource   Resource
	Need, Have float64
}

// Kind groups shortfalls, e.g. "insufficient memory".
func (s Shortfall) Kind() string { return "insufficient " + string(s.Resource) }

// Reason says it all, e.g. "insufficient memory: need 4096MB, have 1024MB".
func (s Shortfall) Reason() string {
	return fmt.Sprintf("%s: need %s, have %s", s.Kind(), s.Amount(s.Need), s.Amount(s.Have))
}

// Amount prints an amount of the shortfall's resource with its unit:
// "2 cores", "4096MB", "20GB", "100Mbps", "1".
func (s Shortfall) Amount(v float64) string {
	switch s.Resource {
	case CPU:
		return FormatCores(v) + " cores"
	case Memory:
		return strconv.FormatFloat(v, 'f', 0, 64) + "MB"
	case Disk:
		return strconv.FormatFloat(v, 'f', 0, 64) + "GB"
	case Bandwidth:
		return strconv.FormatFloat(v, 'f', 0, 64) + "Mbps"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// cpuEpsilon absorbs float rounding in sums of fractional cores (0.1 added
// ten times is not exactly 1), so that "exactly full" fits. It is the only
// tolerance any fit check uses.
const cpuEpsilon = 1e-9

// Fits reports whether request fits in available. When it does not, the
// Shortfall names the first resource that does not fit, in the order CPU,
// memory, disk, bandwidth, GPUs. Asking for none of a resource always fits,
// even where less than nothing is left (a server shrunk below what it
// holds).
func Fits(available, request Resources) (Shortfall, bool) {
	switch {
	case request.CPU > 0 && request.CPU > available.CPU+cpuEpsilon:
		return Shortfall{CPU, request.CPU, available.CPU}, false
	case request.MemoryMB > 0 && request.MemoryMB > available.MemoryMB:
		return Shortfall{Memory, float64(request.MemoryMB), float64(available.MemoryMB)}, false
	case request.DiskGB > 0 && request.DiskGB > available.DiskGB:
		return Shortfall{Disk, float64(request.DiskGB), float64(available.DiskGB)}, false
	case request.BandwidthMbps > 0 && request.BandwidthMbps > available.BandwidthMbps:
		return Shortfall{Bandwidth, float64(request.BandwidthMbps), float64(available.BandwidthMbps)}, false
	case request.GPUCount > 0 && request.GPUCount > available.GPUCount:
		return Shortfall{GPU, float64(request.GPUCount), float64(available.GPUCount)}, false
	}
	return Shortfall{}, true
}

// Growth is what a reservation grows by when it changes from one amount to
// another: the increase of each part, 0 for a part that shrinks or stays.
// Bandwidth is left out: a tier change never checks it (contract §3.16).
func Growth(from, to Resources) Resources {
	return Resources{
		CPU: max(0, to.CPU-from.CPU), MemoryMB: max(0, to.MemoryMB-from.MemoryMB), DiskGB: max(0, to.DiskGB-from.DiskGB),
		GPUCount: max(0, to.GPUCount-from.GPUCount),
	}
}

// RoomForWorkspace reports whether a server with count workspaces may take
// one more under its limit max (0 = unlimited).
func RoomForWorkspace(max, count int) bool { return max <= 0 || count < max }

// FormatCores prints a core count without float noise: 2, 1.5, 0.7.
func FormatCores(c float64) string {
	return strconv.FormatFloat(math.Round(c*1000)/1000, 'f', -1, 64)
}
