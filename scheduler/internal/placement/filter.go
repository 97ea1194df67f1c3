package placement

import (
	"fmt"
	"slices"

	"berth/scheduler/internal/fleet"
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
}

func newQuery(r Request) query {
	q := query{Request: r, arch: wire.NormalizeArch(r.Architecture)}
	for k := range r.Labels {
		q.labelKeys = append(q.labelKeys, k)
	}
	slices.Sort(q.labelKeys)
	if r.GPU {
		q.GPUCount = max(1, r.GPUCount)
	} else {
		q.GPUCount = 0
	}
	return q
}

// filterNode runs the pipeline on one node, in the order of contract §11.2:
// availability first, then fit, then region. It reports the first rejection,
// or false when the node passes every filter.
func filterNode(n *Node, c *Capacity, q *query) (rejection, bool) {
	for _, f := range [...]filter{
		{stageAvailable, checkHealth},
		{stageAvailable, checkState},
		{stageFit, checkGPU},
		{stageFit, checkResources},
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
	if fleet.Usable(n.Health) {
		return "", ""
	}
	r := "health " + orUnset(string(n.Health))
	return r, r
}

func checkState(n *Node, _ *Capacity, _ *query) (string, string) {
	if n.State == fleet.StateActive {
		return "", ""
	}
	r := "state " + orUnset(string(n.State))
	return r, r
}

// checkResources is fleet.Fits: CPU, memory, disk, bandwidth and GPUs
// against what the node has left.
func checkResources(_ *Node, c *Capacity, q *query) (string, string) {
	if short, ok := fleet.Fits(c.Available, q.Resources); !ok {
		return short.Kind(), short.Reason()
	}
	return "", ""
}

// checkGPU checks that a GPU request meets a GPU of the right type; the
// count is checkResources'.
func checkGPU(n *Node, _ *Capacity, q *query) (string, string) {
	switch {
	case !q.GPU:
		return "", ""
	case n.GPUCount <= 0:
		return "gpu required", "gpu required"
	case q.GPUType != "" && n.GPUType != q.GPUType:
		return "gpu type mismatch", "gpu type mismatch: want " + q.GPUType + ", have " + orUnset(n.GPUType)
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
	if !fleet.RoomForWorkspace(n.MaxWorkspaces, n.Workspaces) {
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

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
