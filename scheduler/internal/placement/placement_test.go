package placement

import (
	"berth/scheduler/internal/fleet"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// server returns a healthy, active amd64 node shaped like a row of the
// contract's §11.3 table: CPU and memory totals and reservations, disk 100 GB,
// bandwidth the default.
func server(id, region string, totalCPU, usedCPU float64, totalMem, usedMem int64) Node {
	return Node{
		ID:           id,
		Name:         id,
		Hostname:     id + ".example",
		Region:       region,
		Architecture: "amd64",
		State:        fleet.StateActive,
		Health:       fleet.HealthHealthy,
		Configured:   fleet.Resources{CPU: totalCPU, MemoryMB: totalMem, DiskGB: 100},
		Reserved:     fleet.Resources{CPU: usedCPU, MemoryMB: usedMem},
	}
}

// with returns n changed by f, to vary one field of a table row.
func with(n Node, f func(*Node)) Node {
	f(&n)
	return n
}

// starter is requirement R of contract §11.3.
func starter(f func(*Request)) Request {
	r := Request{Resources: fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}}
	if f != nil {
		f(&r)
	}
	return r
}

func cand(id string, score float64) Candidate {
	return Candidate{NodeID: id, Hostname: id + ".example", Score: score}
}

const (
	gpuStarterType = "NVIDIA RTX 4000 SFF Ada"
)

func gpuNode(id, gpuType string, count int) Node {
	return with(server(id, "eu", 32, 0, 131072, 0), func(n *Node) {
		n.GPUType, n.GPUCount = gpuType, count
	})
}

func gpuStarter(gpuType string) Request {
	return Request{
		Resources: fleet.Resources{CPU: 8, MemoryMB: 65536, DiskGB: 100, BandwidthMbps: 500, GPUCount: 1},
		GPU:       true, GPUType: gpuType,
	}
}

func TestPlace(t *testing.T) {
	a := server("a", "eu", 8, 2, 16384, 4096)
	b := server("b", "us", 8, 6, 16384, 8192)
	full := func(id, region string) Node { return server(id, region, 8, 8, 16384, 16384) }

	tests := []struct {
		name           string
		nodes          []Node
		req            Request
		wantCandidates []Candidate
		wantReason     string
		wantErr        error
		wantErrText    string
	}{
		// Contract §11.3, one row each.
		{
			name:           "spread picks the least utilised",
			nodes:          []Node{a, b},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("a", 50), cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:           "best fit picks the fullest",
			nodes:          []Node{a, b},
			req:            starter(func(r *Request) { r.Strategy = BestFit }),
			wantCandidates: []Candidate{cand("b", 87.5), cand("a", 50)},
			wantReason:     "Selected server for best resource fit",
		},
		{
			name:           "region us",
			nodes:          []Node{a, b},
			req:            starter(func(r *Request) { r.Region = "us" }),
			wantCandidates: []Candidate{cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:        "region ap",
			nodes:       []Node{a, b},
			req:         starter(func(r *Request) { r.Region = "ap" }),
			wantErr:     ErrNoRegionCapacity,
			wantErrText: "no room in region ap",
		},
		{
			name:        "region us when b no longer fits",
			nodes:       []Node{a, with(b, func(n *Node) { n.Reserved.CPU = 7 })},
			req:         starter(func(r *Request) { r.Region = "us" }),
			wantErr:     ErrNoRegionCapacity,
			wantErrText: "no room in region us",
		},
		{
			name:        "both full",
			nodes:       []Node{full("a", "eu"), full("b", "us")},
			req:         starter(nil),
			wantErr:     ErrNoCapacity,
			wantErrText: "no server has room",
		},
		{
			name:        "both full with a region",
			nodes:       []Node{full("a", "eu"), full("b", "us")},
			req:         starter(func(r *Request) { r.Region = "ap" }),
			wantErr:     ErrNoCapacity,
			wantErrText: "no server has room",
		},
		{
			name:           "identical servers: first wins",
			nodes:          []Node{server("x", "eu", 8, 2, 16384, 4096), server("y", "eu", 8, 2, 16384, 4096)},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("x", 50), cand("y", 50)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:           "identical servers: first wins with best fit",
			nodes:          []Node{server("y", "eu", 8, 2, 16384, 4096), server("x", "eu", 8, 2, 16384, 4096)},
			req:            starter(func(r *Request) { r.Strategy = BestFit }),
			wantCandidates: []Candidate{cand("y", 50), cand("x", 50)},
			wantReason:     "Selected server for best resource fit",
		},
		{
			name: "gpu starter: only the exact type with a gpu",
			nodes: []Node{
				server("plain", "eu", 32, 0, 131072, 0),
				gpuNode("zero", gpuStarterType, 0),
				gpuNode("untyped", "", 1),
				gpuNode("other", "NVIDIA RTX 6000 Blackwell", 1),
				gpuNode("exact", gpuStarterType, 1),
			},
			req:            gpuStarter(gpuStarterType),
			wantCandidates: []Candidate{cand("exact", 62.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "gpu starter: no exact type",
			nodes: []Node{
				server("plain", "eu", 32, 0, 131072, 0),
				gpuNode("untyped", "", 1),
				gpuNode("other", "NVIDIA RTX 6000 Blackwell", 1),
			},
			req:         gpuStarter(gpuStarterType),
			wantErr:     ErrNoCapacity,
			wantErrText: "no server has room",
		},
		{
			name: "fallback gpu spec: any gpu server",
			nodes: []Node{
				server("plain", "eu", 32, 0, 131072, 0),
				gpuNode("zero", "", 0),
				gpuNode("untyped", "", 1),
				gpuNode("other", "NVIDIA RTX 6000 Blackwell", 2),
			},
			req:            gpuStarter(""),
			wantCandidates: []Candidate{cand("untyped", 62.5), cand("other", 62.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:           "non-gpu workspace may land on a gpu server",
			nodes:          []Node{gpuNode("g", gpuStarterType, 1)},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("g", 100-(2.0/32*100+4096.0/131072*100)/2)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "available exactly equal to the requirement",
			nodes: []Node{with(server("e", "eu", 8, 6, 16384, 12288), func(n *Node) {
				n.Configured.DiskGB, n.Reserved.DiskGB = 120, 100
				n.Configured.BandwidthMbps, n.Reserved.BandwidthMbps = 1000, 900
			})},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("e", 0)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:        "draining only",
			nodes:       []Node{with(a, func(n *Node) { n.State = fleet.StateDraining })},
			req:         starter(nil),
			wantErr:     ErrNoHealthyServers,
			wantErrText: "no healthy servers",
		},
		{
			name:           "draining skipped",
			nodes:          []Node{with(a, func(n *Node) { n.State = fleet.StateDraining }), b},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:        "no servers",
			nodes:       nil,
			req:         starter(nil),
			wantErr:     ErrNoServers,
			wantErrText: "no servers",
		},

		// Strategies beyond the contract's vectors.
		{
			name:           "strategy names are case-insensitive",
			nodes:          []Node{a, b},
			req:            starter(func(r *Request) { r.Strategy = "BEST_FIT" }),
			wantCandidates: []Candidate{cand("b", 87.5), cand("a", 50)},
			wantReason:     "Selected server for best resource fit",
		},
		{
			name:           "unknown strategy spreads",
			nodes:          []Node{a, b},
			req:            starter(func(r *Request) { r.Strategy = "cheapest" }),
			wantCandidates: []Candidate{cand("a", 50), cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name:  "affinity server eligible",
			nodes: []Node{a, b},
			req: starter(func(r *Request) {
				r.Strategy, r.AffinityServerID = Affinity, "b"
			}),
			wantCandidates: []Candidate{cand("b", 100), cand("a", 50)},
			wantReason:     "Placed on preferred affinity server",
		},
		{
			name:  "affinity server full",
			nodes: []Node{a, full("b", "us")},
			req: starter(func(r *Request) {
				r.Strategy, r.AffinityServerID = "AFFINITY", "b"
			}),
			wantCandidates: []Candidate{cand("a", 50)},
			wantReason:     "Affinity server unavailable, used spread placement",
		},
		{
			name:           "affinity without a server id",
			nodes:          []Node{b, a},
			req:            starter(func(r *Request) { r.Strategy = Affinity }),
			wantCandidates: []Candidate{cand("a", 50), cand("b", 12.5)},
			wantReason:     "Affinity server unavailable, used spread placement",
		},

		// Health and admin state.
		{
			name: "only healthy and degraded active servers",
			nodes: []Node{
				with(a, func(n *Node) { n.ID, n.Hostname, n.Health = "unhealthy", "unhealthy.example", fleet.HealthUnhealthy }),
				with(a, func(n *Node) {
					n.ID, n.Hostname, n.Health = "unreachable", "unreachable.example", fleet.HealthUnreachable
				}),
				with(a, func(n *Node) { n.ID, n.Hostname, n.Health = "unknown", "unknown.example", fleet.HealthUnknown }),
				with(a, func(n *Node) { n.ID, n.Hostname, n.State = "cordoned", "cordoned.example", fleet.StateCordoned }),
				with(a, func(n *Node) { n.ID, n.Hostname, n.Health = "degraded", "degraded.example", fleet.HealthDegraded }),
				with(a, func(n *Node) { n.ID, n.Hostname = "healthy", "healthy.example" }),
			},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("degraded", 50), cand("healthy", 50)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "unavailable and full servers report capacity",
			nodes: []Node{
				with(a, func(n *Node) { n.Health = fleet.HealthUnhealthy }),
				full("b", "us"),
			},
			req:         starter(nil),
			wantErr:     ErrNoCapacity,
			wantErrText: "no server has room",
		},
		{
			name: "unavailable and wrong region report the region",
			nodes: []Node{
				with(a, func(n *Node) { n.Health = fleet.HealthUnhealthy }),
				b,
			},
			req:         starter(func(r *Request) { r.Region = "eu" }),
			wantErr:     ErrNoRegionCapacity,
			wantErrText: "no room in region eu",
		},

		// Effective capacity.
		{
			name: "real capacity below the configured one",
			nodes: []Node{
				with(a, func(n *Node) { n.Real.CPU = 3 }), // 3 − 2 reserved = 1 core left
				b,
			},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "scores use the effective total",
			nodes: []Node{
				with(server("r", "eu", 0, 0, 0, 0), func(n *Node) {
					n.Real = Measured{CPU: 4, MemoryMB: 8192, DiskGB: 200}
				}),
			},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("r", 50)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "real free memory caps the available memory",
			nodes: []Node{
				with(a, func(n *Node) { n.Real.MemoryFreeMB = 4095 }),
				b,
			},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},

		// Other filters.
		{
			name: "architecture spellings are equal",
			nodes: []Node{
				with(a, func(n *Node) { n.ID, n.Hostname, n.Architecture = "arm", "arm.example", "aarch64" }),
				with(a, func(n *Node) { n.ID, n.Hostname, n.Architecture = "x86", "x86.example", "x86_64" }),
			},
			req:            starter(func(r *Request) { r.Architecture = "amd64" }),
			wantCandidates: []Candidate{cand("x86", 50)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "labels must all match",
			nodes: []Node{
				with(a, func(n *Node) { n.Labels = map[string]string{"tier": "gpu"} }),
				with(b, func(n *Node) { n.Labels = map[string]string{"tier": "gpu", "disk": "nvme"} }),
			},
			req: starter(func(r *Request) {
				r.Labels = map[string]string{"tier": "gpu", "disk": "nvme"}
			}),
			wantCandidates: []Candidate{cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
		{
			name: "max workspaces",
			nodes: []Node{
				with(a, func(n *Node) { n.MaxWorkspaces, n.Workspaces = 10, 10 }),
				with(b, func(n *Node) { n.MaxWorkspaces, n.Workspaces = 10, 9 }),
			},
			req:            starter(nil),
			wantCandidates: []Candidate{cand("b", 12.5)},
			wantReason:     "Selected server with lowest utilization",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Place(tt.nodes, tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Place() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && err.Error() != tt.wantErrText {
				t.Errorf("Place() error text = %q, want %q", err.Error(), tt.wantErrText)
			}
			if diff := cmp.Diff(tt.wantCandidates, got.Candidates); diff != "" {
				t.Errorf("Place() candidates mismatch (-want +got):\n%s", diff)
			}
			var wantChosen Candidate
			if len(tt.wantCandidates) > 0 {
				wantChosen = tt.wantCandidates[0]
			}
			if got.Chosen != wantChosen {
				t.Errorf("Place() chosen = %+v, want %+v", got.Chosen, wantChosen)
			}
			if got.Reason != tt.wantReason {
				t.Errorf("Place() reason = %q, want %q", got.Reason, tt.wantReason)
			}
			if len(got.Explanations) != len(tt.nodes) {
				t.Errorf("Place() gave %d explanations, want one per node (%d)", len(got.Explanations), len(tt.nodes))
			}
		})
	}
}

func TestPlaceRoundRobin(t *testing.T) {
	nodes := []Node{
		server("b", "eu", 8, 0, 16384, 0),
		server("a", "eu", 8, 0, 16384, 0),
		server("c", "eu", 8, 0, 16384, 0),
	}
	tests := []struct {
		sequence       uint64
		wantCandidates []Candidate
		wantReason     string
	}{
		{0, []Candidate{cand("a", 50), cand("b", 50), cand("c", 50)}, "Round-robin selection (index 0)"},
		{1, []Candidate{cand("b", 50), cand("c", 50), cand("a", 50)}, "Round-robin selection (index 1)"},
		{2, []Candidate{cand("c", 50), cand("a", 50), cand("b", 50)}, "Round-robin selection (index 2)"},
		{3, []Candidate{cand("a", 50), cand("b", 50), cand("c", 50)}, "Round-robin selection (index 0)"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("sequence %d", tt.sequence), func(t *testing.T) {
			got, err := Place(nodes, starter(func(r *Request) {
				r.Strategy, r.Sequence = "ROUND_ROBIN", tt.sequence
			}))
			if err != nil {
				t.Fatalf("Place() error = %v, want nil", err)
			}
			if diff := cmp.Diff(tt.wantCandidates, got.Candidates); diff != "" {
				t.Errorf("Place() candidates mismatch (-want +got):\n%s", diff)
			}
			if got.Reason != tt.wantReason {
				t.Errorf("Place() reason = %q, want %q", got.Reason, tt.wantReason)
			}
			if got.Strategy != RoundRobin {
				t.Errorf("Place() strategy = %q, want %q", got.Strategy, RoundRobin)
			}
		})
	}
}

func TestPlaceExplanations(t *testing.T) {
	base := server("n", "eu", 8, 0, 16384, 0)
	tests := []struct {
		name string
		node Node
		req  Request
		want Explanation
	}{
		{
			name: "candidate",
			node: base,
			req:  starter(nil),
			want: Explanation{NodeID: "n", Score: 100 - (25.0+25.0)/2},
		},
		{
			name: "health",
			node: with(base, func(n *Node) { n.Health = fleet.HealthUnhealthy }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "health unhealthy", Reason: "health unhealthy"},
		},
		{
			name: "health unset",
			node: with(base, func(n *Node) { n.Health = "" }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "health unset", Reason: "health unset"},
		},
		{
			name: "health before state",
			node: with(base, func(n *Node) { n.Health, n.State = fleet.HealthUnreachable, fleet.StateDraining }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "health unreachable", Reason: "health unreachable"},
		},
		{
			name: "state",
			node: with(base, func(n *Node) { n.State = fleet.StateDraining }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "state draining", Reason: "state draining"},
		},
		{
			name: "cpu",
			node: with(base, func(n *Node) { n.Reserved.CPU = 6.5 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "insufficient cpu", Reason: "insufficient cpu: need 2 cores, have 1.5 cores"},
		},
		{
			// 1 − 0.8 is 0.19999999999999996 in float64.
			name: "cpu left in fractions fits exactly",
			node: with(base, func(n *Node) { n.Configured.CPU, n.Reserved.CPU = 1, 0.8 }),
			req:  starter(func(r *Request) { r.CPU = 0.2 }),
			want: Explanation{NodeID: "n", Score: 100 - (100+25.0)/2},
		},
		{
			name: "memory",
			node: with(base, func(n *Node) { n.Reserved.MemoryMB = 15360 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "insufficient memory", Reason: "insufficient memory: need 4096MB, have 1024MB"},
		},
		{
			name: "memory free",
			node: with(base, func(n *Node) { n.Real.MemoryFreeMB = 1024 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "insufficient memory", Reason: "insufficient memory: need 4096MB, have 1024MB"},
		},
		{
			name: "disk",
			node: with(base, func(n *Node) { n.Real.DiskGB, n.Real.DiskFreeGB = 500, 10 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "insufficient disk", Reason: "insufficient disk: need 20GB, have 10GB"},
		},
		{
			name: "disk unknown",
			node: with(base, func(n *Node) { n.Configured.DiskGB = 0 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "insufficient disk", Reason: "insufficient disk: need 20GB, have 0GB"},
		},
		{
			name: "bandwidth",
			node: with(base, func(n *Node) { n.Reserved.BandwidthMbps = 950 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "insufficient bandwidth", Reason: "insufficient bandwidth: need 100Mbps, have 50Mbps"},
		},
		{
			name: "gpu required",
			node: base,
			req:  starter(func(r *Request) { r.GPU = true }),
			want: Explanation{NodeID: "n", Kind: "gpu required", Reason: "gpu required"},
		},
		{
			name: "gpu type",
			node: with(base, func(n *Node) { n.GPUCount = 1 }),
			req:  starter(func(r *Request) { r.GPU, r.GPUType = true, gpuStarterType }),
			want: Explanation{NodeID: "n", Kind: "gpu type mismatch", Reason: "gpu type mismatch: want NVIDIA RTX 4000 SFF Ada, have unset"},
		},
		{
			name: "gpu count",
			node: with(base, func(n *Node) { n.GPUCount = 1 }),
			req:  starter(func(r *Request) { r.GPU, r.GPUCount = true, 2 }),
			want: Explanation{NodeID: "n", Kind: "insufficient gpus", Reason: "insufficient gpus: need 2, have 1"},
		},
		{
			name: "architecture",
			node: with(base, func(n *Node) { n.Architecture = "x86_64" }),
			req:  starter(func(r *Request) { r.Architecture = "aarch64" }),
			want: Explanation{NodeID: "n", Kind: "architecture mismatch", Reason: "architecture mismatch: want arm64, have amd64"},
		},
		{
			name: "labels",
			node: with(base, func(n *Node) { n.Labels = map[string]string{"tier": "cpu", "zone": "a"} }),
			req: starter(func(r *Request) {
				r.Labels = map[string]string{"zone": "a", "tier": "gpu"}
			}),
			want: Explanation{NodeID: "n", Kind: "label mismatch", Reason: "label mismatch: tier=gpu"},
		},
		{
			name: "max workspaces",
			node: with(base, func(n *Node) { n.MaxWorkspaces, n.Workspaces = 10, 12 }),
			req:  starter(nil),
			want: Explanation{NodeID: "n", Kind: "max workspaces reached", Reason: "max workspaces reached (10)"},
		},
		{
			name: "region",
			node: with(base, func(n *Node) { n.Region = "eu" }),
			req:  starter(func(r *Request) { r.Region = "us" }),
			want: Explanation{NodeID: "n", Kind: "region mismatch", Reason: "region mismatch: want us, have eu"},
		},
		{
			name: "capacity before region",
			node: with(base, func(n *Node) { n.Reserved.MemoryMB = 15360 }),
			req:  starter(func(r *Request) { r.Region = "us" }),
			want: Explanation{NodeID: "n", Kind: "insufficient memory", Reason: "insufficient memory: need 4096MB, have 1024MB"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Place([]Node{tt.node}, tt.req)
			if diff := cmp.Diff([]Explanation{tt.want}, got.Explanations); diff != "" {
				t.Errorf("Place() explanations mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecisionSummary(t *testing.T) {
	full := server("full", "eu", 8, 8, 16384, 16384)
	tests := []struct {
		name  string
		nodes []Node
		req   Request
		want  string
	}{
		{
			name: "most common first",
			nodes: []Node{
				with(full, func(n *Node) { n.Reserved.CPU = 0 }),
				server("us", "us", 8, 0, 16384, 0),
				with(full, func(n *Node) { n.Reserved.CPU = 0 }),
				with(full, func(n *Node) { n.Reserved.CPU = 0 }),
			},
			req:  starter(func(r *Request) { r.Region = "eu" }),
			want: "insufficient memory on 3 servers, region mismatch on 1 server",
		},
		{
			name: "ties keep the order of first appearance",
			nodes: []Node{
				with(full, func(n *Node) { n.State = fleet.StateDraining }),
				with(full, func(n *Node) { n.Health = fleet.HealthUnreachable }),
				full,
			},
			req:  starter(nil),
			want: "state draining on 1 server, health unreachable on 1 server, insufficient cpu on 1 server",
		},
		{
			name:  "nothing rejected",
			nodes: []Node{server("a", "eu", 8, 0, 16384, 0), server("b", "eu", 8, 0, 16384, 0)},
			req:   starter(nil),
			want:  "all 2 servers eligible",
		},
		{
			name: "no servers",
			req:  starter(nil),
			want: "no servers",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := Place(tt.nodes, tt.req)
			if got := d.Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNodeEffective(t *testing.T) {
	tests := []struct {
		name string
		node Node
		want Capacity
	}{
		{
			name: "configured only; bandwidth defaults",
			node: Node{Configured: fleet.Resources{CPU: 8, MemoryMB: 16384, DiskGB: 100}},
			want: Capacity{
				Total:     fleet.Resources{CPU: 8, MemoryMB: 16384, DiskGB: 100, BandwidthMbps: 1000},
				Available: fleet.Resources{CPU: 8, MemoryMB: 16384, DiskGB: 100, BandwidthMbps: 1000},
			},
		},
		{
			name: "real only",
			node: Node{Real: Measured{CPU: 4, MemoryMB: 8192, DiskGB: 50}},
			want: Capacity{
				Total:     fleet.Resources{CPU: 4, MemoryMB: 8192, DiskGB: 50, BandwidthMbps: 1000},
				Available: fleet.Resources{CPU: 4, MemoryMB: 8192, DiskGB: 50, BandwidthMbps: 1000},
			},
		},
		{
			name: "the smaller of configured and real",
			node: Node{
				Configured: fleet.Resources{CPU: 8, MemoryMB: 8192, DiskGB: 500, BandwidthMbps: 250},
				Real:       Measured{CPU: 6, MemoryMB: 16384, DiskGB: 200},
			},
			want: Capacity{
				Total:     fleet.Resources{CPU: 6, MemoryMB: 8192, DiskGB: 200, BandwidthMbps: 250},
				Available: fleet.Resources{CPU: 6, MemoryMB: 8192, DiskGB: 200, BandwidthMbps: 250},
			},
		},
		{
			name: "reserved is taken off, and real free caps memory and disk",
			node: Node{
				Configured: fleet.Resources{CPU: 8, MemoryMB: 16384, DiskGB: 100},
				Real:       Measured{MemoryFreeMB: 2048, DiskFreeGB: 70},
				Reserved:   fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100},
			},
			want: Capacity{
				Total:     fleet.Resources{CPU: 8, MemoryMB: 16384, DiskGB: 100, BandwidthMbps: 1000},
				Available: fleet.Resources{CPU: 6, MemoryMB: 2048, DiskGB: 70, BandwidthMbps: 900},
			},
		},
		{
			name: "real free above what is left does not raise it",
			node: Node{
				Configured: fleet.Resources{MemoryMB: 16384, DiskGB: 100},
				Real:       Measured{MemoryFreeMB: 16000, DiskFreeGB: 100},
				Reserved:   fleet.Resources{MemoryMB: 12288, DiskGB: 60},
			},
			want: Capacity{
				Total:     fleet.Resources{MemoryMB: 16384, DiskGB: 100, BandwidthMbps: 1000},
				Available: fleet.Resources{MemoryMB: 4096, DiskGB: 40, BandwidthMbps: 1000},
			},
		},
		{
			name: "overcommitted is never below zero",
			node: Node{
				Configured: fleet.Resources{CPU: 4, MemoryMB: 4096, DiskGB: 10, BandwidthMbps: 100},
				Reserved:   fleet.Resources{CPU: 6, MemoryMB: 8192, DiskGB: 20, BandwidthMbps: 200},
			},
			want: Capacity{
				Total: fleet.Resources{CPU: 4, MemoryMB: 4096, DiskGB: 10, BandwidthMbps: 100},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.node.Effective()); diff != "" {
				t.Errorf("Effective() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStrategy(t *testing.T) {
	tests := []struct {
		in   string
		want Strategy
	}{
		{"spread", Spread},
		{"SPREAD", Spread},
		{"best_fit", BestFit},
		{"BEST_FIT", BestFit},
		{"Affinity", Affinity},
		{"ROUND_ROBIN", RoundRobin},
		{"", Spread},
		{"cheapest", Spread},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseStrategy(tt.in); got != tt.want {
				t.Errorf("ParseStrategy(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRegionError(t *testing.T) {
	var err error = &RegionError{Region: "ap"}
	if !errors.Is(err, ErrNoRegionCapacity) {
		t.Errorf("errors.Is(%v, ErrNoRegionCapacity) = false, want true", err)
	}
	if errors.Is(err, ErrNoCapacity) {
		t.Errorf("errors.Is(%v, ErrNoCapacity) = true, want false", err)
	}
	wrapped := fmt.Errorf("place workspace: %w", err)
	var re *RegionError
	if !errors.As(wrapped, &re) || re.Region != "ap" {
		t.Errorf("errors.As(%v) region = %v, want ap", wrapped, re)
	}
}

func TestPlaceDoesNotChangeInput(t *testing.T) {
	nodes := []Node{server("b", "eu", 8, 0, 16384, 0), server("a", "eu", 8, 4, 16384, 0)}
	want := []Node{server("b", "eu", 8, 0, 16384, 0), server("a", "eu", 8, 4, 16384, 0)}
	for _, s := range []Strategy{Spread, BestFit, Affinity, RoundRobin} {
		if _, err := Place(nodes, starter(func(r *Request) { r.Strategy, r.AffinityServerID = s, "a" })); err != nil {
			t.Fatalf("Place(%s) error = %v, want nil", s, err)
		}
	}
	if diff := cmp.Diff(want, nodes); diff != "" {
		t.Errorf("Place() changed its input (-want +got):\n%s", diff)
	}
}

// mixedFleet returns n nodes with a realistic mix: mostly healthy servers of mixed
// load in three regions, some full, some draining or unhealthy, some GPU.
func mixedFleet(n int) []Node {
	regions := []string{"eu", "us", "ap"}
	nodes := make([]Node, n)
	for i := range nodes {
		id := fmt.Sprintf("ws-%05d", i)
		used := float64(i % 9) // 0..8 of 16 cores
		nodes[i] = server(id, regions[i%len(regions)], 16, used, 65536, int64(used)*4096)
		nodes[i].Labels = map[string]string{"pool": "general"}
		nodes[i].Real = Measured{CPU: 16, MemoryMB: 65536, MemoryFreeMB: 65536 - int64(used)*4096, DiskGB: 500, DiskFreeGB: 400}
		switch {
		case i%10 == 3: // full
			nodes[i].Reserved = fleet.Resources{CPU: 16, MemoryMB: 65536, DiskGB: 100}
		case i%20 == 7:
			nodes[i].State = fleet.StateDraining
		case i%25 == 11:
			nodes[i].Health = fleet.HealthUnreachable
		case i%50 == 13:
			nodes[i].GPUType, nodes[i].GPUCount = gpuStarterType, 1
		}
	}
	return nodes
}

func BenchmarkPlace(b *testing.B) {
	req := starter(func(r *Request) {
		r.Region = "eu"
		r.Architecture = "x86_64"
		r.Labels = map[string]string{"pool": "general"}
	})
	for _, n := range []int{10, 1_000, 10_000} {
		nodes := mixedFleet(n)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Place(nodes, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
