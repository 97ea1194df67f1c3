package placement

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"berth/shared/wire"
)

// stage groups the filters by what a rejection means for the failure Place
// reports when no node is left.
type stage int

const (
	stageAvailable stage = iota // health and admin state: ErrNoHealthyServers
	stageFit                    // resources, GPU, architecture, labels, max workspaces: ErrNoCapacity
	stageRegion                 // required region: ErrNoRegionCapacity
)

// A filter passes a node or rejects it with a short kind ("insufficient
// memory"), used to group rejections in Decision.Summary, and a full reason
// ("insufficient memory: need 4096MB, have 1024MB"). An empty kind passes.
type filter struct {
	stage stage
	check func(n *Node, c *Capacity, q *query) (kind, reason string)
}

// rejection is why a node was filtered out.
type rejection struct {
	stage        stage
	kind, reason string
}

// query is a Request normalised once per Place call.
type query struct {
	Request
	arch      string   // wire.NormalizeArch(Architecture)
	labelKeys []string // Labels' keys, sorted, so reasons are deterministic
	gpuCount  int      // GPUs required when GPU is set: at least 1
}

func newQuery(r Request) query {
	q := query{Request: r, arch: wire.NormalizeArch(r.Architecture)}
	for k := range r.Labels {
		q.labelKeys = append(q.labelKeys, k)
	}
	slices.Sort(q.labelKeys)
	if r.GPU {
		q.gpuCount = max(1, r.GPUCount)
	}
	return q
}

// cpuEpsilon absorbs float rounding in sums of reserved cores, so that a
// node with exactly the requested cores left still fits.
const cpuEpsilon = 1e-9

// filterNode runs the pipeline on one node, in the order of contract §11.2:
// availability first, then fit, then region. It reports the first rejection,
// or false when the node passes every filter.
func filterNode(n *Node, c *Capacity, q *query) (rejection, bool) {
	for _, f := range [...]filter{
		{stageAvailable, checkHealth},
		{stageAvailable, checkState},
		{stageFit, checkResources},
		{stageFit, checkGPU},
		{stageFit, checkArchitecture},
		{stageFit, checkLabels},
		{stageFit, checkMaxWorkspaces},
		{stageRegion, checkRegion},
	} {
		if kind, reason := f.check(n, c, q); kind != "" {
			return rejection{stage: f.stage, kind: kind, reason: reason}, true
		}
	}
	return rejection{}, false
}

func checkHealth(n *Node, _ *Capacity, _ *query) (string, string) {
	switch n.Health {
	case HealthHealthy, HealthDegraded:
		return "", ""
	}
	r := "health " + orUnset(string(n.Health))
	return r, r
}

func checkState(n *Node, _ *Capacity, _ *query) (string, string) {
	if n.State == StateActive {
		return "", ""
	}
	r := "state " + orUnset(string(n.State))
	return r, r
}

func checkResources(_ *Node, c *Capacity, q *query) (string, string) {
	have := c.Available
	switch {
	case have.CPU+cpuEpsilon < q.CPU:
		return "insufficient cpu", fmt.Sprintf("insufficient cpu: need %s cores, have %s cores",
			formatCores(q.CPU), formatCores(have.CPU))
	case have.MemoryMB < q.MemoryMB:
		return "insufficient memory", fmt.Sprintf("insufficient memory: need %dMB, have %dMB",
			q.MemoryMB, have.MemoryMB)
	case have.DiskGB < q.DiskGB:
		return "insufficient disk", fmt.Sprintf("insufficient disk: need %dGB, have %dGB",
			q.DiskGB, have.DiskGB)
	case have.BandwidthMbps < q.BandwidthMbps:
		return "insufficient bandwidth", fmt.Sprintf("insufficient bandwidth: need %dMbps, have %dMbps",
			q.BandwidthMbps, have.BandwidthMbps)
	}
	return "", ""
}

func checkGPU(n *Node, _ *Capacity, q *query) (string, string) {
	switch {
	case !q.GPU:
		return "", ""
	case n.GPUCount <= 0:
		return "gpu required", "gpu required"
	case q.GPUType != "" && n.GPUType != q.GPUType:
		return "gpu type mismatch", "gpu type mismatch: want " + q.GPUType + ", have " + orUnset(n.GPUType)
	case n.GPUCount < q.gpuCount:
		return "insufficient gpus", fmt.Sprintf("insufficient gpus: need %d, have %d", q.gpuCount, n.GPUCount)
	}
	return "", ""
}

func checkArchitecture(n *Node, _ *Capacity, q *query) (string, string) {
	if q.arch == "" {
		return "", ""
	}
	if have := wire.NormalizeArch(n.Architecture); have != q.arch {
		return "architecture mismatch", "architecture mismatch: want " + q.arch + ", have " + orUnset(have)
	}
	return "", ""
}

func checkLabels(n *Node, _ *Capacity, q *query) (string, string) {
	for _, k := range q.labelKeys {
		if v, ok := n.Labels[k]; !ok || v != q.Labels[k] {
			return "label mismatch", "label mismatch: " + k + "=" + q.Labels[k]
		}
	}
	return "", ""
}

func checkMaxWorkspaces(n *Node, _ *Capacity, _ *query) (string, string) {
	if n.MaxWorkspaces > 0 && n.Workspaces >= n.MaxWorkspaces {
		return "max workspaces reached", fmt.Sprintf("max workspaces reached (%d)", n.MaxWorkspaces)
	}
	return "", ""
}

func checkRegion(n *Node, _ *Capacity, q *query) (string, string) {
	if q.Region == "" || n.Region == q.Region {
		return "", ""
	}
	return "region mismatch", "region mismatch: want " + q.Region + ", have " + orUnset(n.Region)
}

// formatCores prints a core count without float noise: 2, 1.5, 0.7.
func formatCores(c float64) string {
	return strconv.FormatFloat(math.Round(c*1000)/1000, 'f', -1, 64)
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
