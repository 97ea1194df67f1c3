package placement

import "berth/scheduler/internal/fleet"

// DefaultBandwidthMbps is a server's total bandwidth when none is configured
// (contract §11.1).
const DefaultBandwidthMbps = 1000

// Measured is a server's real capacity, as its agent reports it over gossip.
// Zero means unknown.
type Measured struct {
	CPU          float64 // cores
	MemoryMB     int64   // total
	MemoryFreeMB int64   // free now, berth workspaces and everything else counted
	DiskGB       int64   // total of the workspace data filesystem
	DiskFreeGB   int64   // free now on that filesystem
}

// Node is one server as placement sees it: a snapshot the caller builds from
// the registry row, the live capacity from gossip and the health state.
type Node struct {
	ID           string
	Name         string
	Hostname     string
	Region       string
	Architecture string // any spelling; compared after NormalizeArch
	Labels       map[string]string

	State  fleet.State
	Health fleet.Health

	GPUType  string // empty when unknown
	GPUCount int    // GPUs in the server; Reserved.GPUCount of them are taken

	MaxWorkspaces int // 0 = unlimited
	Workspaces    int // berth workspaces on the server now

	Configured fleet.Resources // admin-configured capacity; 0 = not configured (GPUs: see GPUCount)
	Real       Measured        // measured by the agent; 0 = unknown
	Reserved   fleet.Resources // reserved by berth workspaces on the server (registry)
}

// Capacity is a node's effective capacity: what placement checks requests
// against and scores with.
type Capacity struct {
	Total     fleet.Resources
	Available fleet.Resources
}

// Effective returns the node's effective capacity.
//
// Total is the smaller of the configured and the real amount when both are
// known, else whichever is known (0 when neither is). Bandwidth is never
// measured: it is the configured amount, or DefaultBandwidthMbps.
//
// Available is Total minus Reserved, never below 0. For memory and disk it is
// also capped by the real free amount when that is known, because processes
// outside berth use room too.
func (n *Node) Effective() Capacity {
	bandwidth := n.Configured.BandwidthMbps
	if bandwidth <= 0 {
		bandwidth = DefaultBandwidthMbps
	}
	total := fleet.Resources{
		CPU:           smallerKnown(n.Configured.CPU, n.Real.CPU),
		MemoryMB:      smallerKnown(n.Configured.MemoryMB, n.Real.MemoryMB),
		DiskGB:        smallerKnown(n.Configured.DiskGB, n.Real.DiskGB),
		BandwidthMbps: bandwidth,
		GPUCount:      max(0, n.GPUCount),
	}
	return Capacity{
		Total: total,
		Available: fleet.Resources{
			CPU:           max(0, total.CPU-n.Reserved.CPU),
			MemoryMB:      capKnown(max(0, total.MemoryMB-n.Reserved.MemoryMB), n.Real.MemoryFreeMB),
			DiskGB:        capKnown(max(0, total.DiskGB-n.Reserved.DiskGB), n.Real.DiskFreeGB),
			BandwidthMbps: max(0, total.BandwidthMbps-n.Reserved.BandwidthMbps),
			GPUCount:      max(0, total.GPUCount-n.Reserved.GPUCount),
		},
	}
}

// smallerKnown returns the smaller of a and b, ignoring an unknown (≤ 0) one.
func smallerKnown[T int64 | float64](a, b T) T {
	switch {
	case a <= 0:
		return max(0, b)
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}

// capKnown returns v capped by limit, when limit is known (> 0).
func capKnown(v, limit int64) int64 {
	if limit > 0 {
		return min(v, limit)
	}
	return v
}
