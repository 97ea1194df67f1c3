package tiers

import (
	"slices"
	"strings"

	"berth/scheduler/internal/fleet"
	"berth/shared/wire"
)

// Spec is one tier.
type Spec struct {
	Tier                 string
	DisplayName          string
	Architecture         string // amd64 or arm64
	VCPU                 float64
	MemoryMB             int64
	StorageGB            int64
	BandwidthMbps        int64
	IsGPU                bool
	GPUType              string
	GPUCount             int
	HourlyRateCents      int64
	RequiresSubscription string
	SortOrder            int
}

// builtin is §9.1's seeded table.
var builtin = []Spec{
	{"starter_arm", "Starter (ARM)", "arm64", 2, 4096, 20, 100, false, "", 0, 2, "", 0},
	{"pro_arm", "Pro (ARM)", "arm64", 4, 8192, 50, 250, false, "", 0, 3, "pro", 1},
	{"power_arm", "Power (ARM)", "arm64", 8, 16384, 100, 500, false, "", 0, 5, "max", 2},
	{"enterprise_arm", "Enterprise (ARM)", "arm64", 16, 32768, 200, 1000, false, "", 0, 8, "max", 3},
	{"starter", "Starter", "amd64", 2, 4096, 20, 100, false, "", 0, 3, "", 4},
	{"pro", "Pro", "amd64", 4, 8192, 50, 250, false, "", 0, 6, "pro", 5},
	{"power", "Power", "amd64", 8, 16384, 100, 500, false, "", 0, 10, "max", 6},
	{"enterprise", "Enterprise", "amd64", 16, 32768, 200, 1000, false, "", 0, 15, "max", 7},
	{"gpu_starter", "GPU Starter", "amd64", 8, 65536, 100, 500, true, "NVIDIA RTX 4000 SFF Ada", 1, 40, "pro", 8},
	{"gpu_pro", "GPU Pro", "amd64", 24, 262144, 500, 1000, true, "NVIDIA RTX 6000 Blackwell", 1, 180, "max", 9},
}

// DefaultBandwidthMbps is what a tier without a bandwidth reserves
// (contract §9.3: "spec value or 100").
const DefaultBandwidthMbps = 100

// Resources is what a workspace of this tier reserves on its server. It is
// the only translation of a tier into resources.
func (s Spec) Resources() fleet.Resources {
	bw := s.BandwidthMbps
	if bw == 0 {
		bw = DefaultBandwidthMbps
	}
	return fleet.Resources{CPU: s.VCPU, MemoryMB: s.MemoryMB, DiskGB: s.StorageGB, BandwidthMbps: bw, GPUCount: s.GPUCount}
}

// Process and file limits per vCPU (ProcessLimits), with floors for the
// smallest tiers and a ceiling for the largest.
const (
	ProcessesPerVCPU = 512
	MaxProcesses     = 16384
	OpenFilesPerVCPU = 32768
	MaxOpenFiles     = 1 << 20
)

// ProcessLimits are a workspace's task and open-file limits: 512 tasks and
// 32768 files per vCPU, at least 1024 and 65536 (starter: 1024 tasks,
// 65536 files; enterprise: 8192, 524288). Like Resources, the one place a
// tier becomes limits; the agent applies them (PIDs cgroup under runc,
// RLIMIT_NPROC inside gVisor under runsc; RLIMIT_NOFILE).
func (s Spec) ProcessLimits() wire.ProcessLimits {
	return wire.ProcessLimits{
		Processes: clamp(int64(s.VCPU*ProcessesPerVCPU), wire.MinProcessLimits.Processes, MaxProcesses),
		OpenFiles: clamp(int64(s.VCPU*OpenFilesPerVCPU), wire.MinProcessLimits.OpenFiles, MaxOpenFiles),
	}
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

// NeedsGPU tells whether a workspace of this tier needs a GPU server
// (§9.1): a GPU tier, or a spec naming a GPU type and count.
func (s Spec) NeedsGPU() bool { return s.IsGPU || (s.GPUType != "" && s.GPUCount > 0) }

// Fallback is what an unknown tier reserves (contract §3.1).
var Fallback = Spec{Tier: "", VCPU: 2, MemoryMB: 4096, StorageGB: 20, BandwidthMbps: 100}

// Catalog is a set of tiers. The zero value is empty; Builtin returns the
// contract's table. A Catalog is immutable and safe for concurrent use.
type Catalog struct{ specs []Spec }

// Builtin returns the built-in catalog.
func Builtin() Catalog { return Catalog{specs: builtin} }

// New returns a catalog of specs, in their order (the podex API's
// hardware specs, podexapi). Tier names are matched case-insensitively;
// the first spec of a name wins.
func New(specs []Spec) Catalog {
	out := make([]Spec, 0, len(specs))
	seen := map[string]bool{}
	for _, s := range specs {
		s.Tier = strings.ToLower(s.Tier)
		if seen[s.Tier] {
			continue
		}
		seen[s.Tier] = true
		out = append(out, s)
	}
	return Catalog{specs: out}
}

// Lookup finds a tier by name, case-insensitively.
func (c Catalog) Lookup(name string) (Spec, bool) {
	name = strings.ToLower(name)
	for _, s := range c.specs {
		if s.Tier == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Resolve returns the tier's spec, or Fallback (with the asked name) when
// the tier is unknown.
func (c Catalog) Resolve(name string) Spec {
	if s, ok := c.Lookup(name); ok {
		return s
	}
	f := Fallback
	f.Tier = name
	return f
}

// All returns the tiers in sort order.
func (c Catalog) All() []Spec { return slices.Clone(c.specs) }
