package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
)

// randomNode is a node drawn from a few server types and places, with any
// load, state and health: enough classes and ties to exercise the index.
// A uniform node is of one type and place: a fleet of them is one class,
// where the order of the walk decides.
func randomNode(r *rand.Rand, id string, uniform bool) Node {
	types := []struct {
		cpu float64
		mem int64
	}{{8, 16384}, {16, 65536}, {32, 131072}, {0, 0}}
	ty := types[r.IntN(len(types))]
	n := Node{
		ID: id, Name: id, Hostname: id + ".example",
		Region:       []string{"eu", "us", ""}[r.IntN(3)],
		Architecture: []string{"amd64", "x86_64", "arm64", ""}[r.IntN(4)],
		State:        fleet.StateActive,
		Health:       fleet.HealthHealthy,
		Configured:   fleet.Resources{CPU: ty.cpu, MemoryMB: ty.mem, DiskGB: int64(r.IntN(3)) * 100},
	}
	if r.IntN(4) == 0 {
		n.Labels = map[string]string{"pool": []string{"general", "build"}[r.IntN(2)]}
	}
	if r.IntN(6) == 0 {
		n.GPUType, n.GPUCount = []string{"A", "B"}[r.IntN(2)], 1+r.IntN(2)
	}
	if r.IntN(3) == 0 { // measured by the agent
		n.Real = Measured{CPU: 16, MemoryMB: 65536, MemoryFreeMB: int64(r.IntN(65536)), DiskGB: 500, DiskFreeGB: int64(r.IntN(500))}
	}
	if uniform {
		n.Region, n.Architecture, n.Labels, n.GPUType, n.GPUCount = "eu", "amd64", nil, "", 0
		n.Configured.CPU, n.Configured.MemoryMB = 16, 65536
	}
	switch r.IntN(12) {
	case 0:
		n.State = fleet.StateDraining
	case 1:
		n.Health = fleet.HealthUnreachable
	case 2:
		n.Health = fleet.HealthDegraded
	case 3:
		n.MaxWorkspaces = r.IntN(3)
	}
	// Loads in whole steps, so that equal keys (ties) are common.
	n.Reserved = fleet.Resources{CPU: float64(r.IntN(9)), MemoryMB: int64(r.IntN(9)) * 2048, DiskGB: int64(r.IntN(4)) * 20}
	n.Workspaces = r.IntN(4)
	return n
}

func randomRequest(r *rand.Rand, ids []string) Request {
	req := Request{
		Resources: []fleet.Resources{{CPU: 1, MemoryMB: 1024, DiskGB: 10}, {CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100},
			{CPU: 4, MemoryMB: 8192, DiskGB: 50}, {CPU: 0.5, MemoryMB: 512}}[r.IntN(4)],
		Strategy: []Strategy{Spread, BestFit, Affinity, RoundRobin, ""}[r.IntN(5)],
		Sequence: r.Uint64N(100),
	}
	if r.IntN(3) == 0 {
		req.Region = []string{"eu", "us", "ap"}[r.IntN(3)]
	}
	if r.IntN(3) == 0 {
		req.Architecture = []string{"amd64", "arm64"}[r.IntN(2)]
	}
	if r.IntN(5) == 0 {
		req.Labels = map[string]string{"pool": "general"}
	}
	if r.IntN(6) == 0 {
		req.GPU, req.GPUType = true, []string{"A", "B", ""}[r.IntN(3)]
	}
	if len(ids) > 0 && r.IntN(2) == 0 {
		req.AffinityServerID = ids[r.IntN(len(ids))]
	}
	if len(ids) > 0 && r.IntN(4) == 0 {
		req.HomeServerID = ids[r.IntN(len(ids))]
	}
	return req
}

// sameDecision checks that the index decided as Place over the same nodes:
// the same outcome, reason and (first CandidateLimit) candidates.
func sameDecision(t *testing.T, what string, got Decision, gotErr error, want Decision, wantErr error) bool {
	t.Helper()
	if (gotErr == nil) != (wantErr == nil) || wantErr != nil && gotErr.Error() != wantErr.Error() {
		t.Errorf("%s: error %v, full scan %v", what, gotErr, wantErr)
		return false
	}
	if wantErr != nil {
		return true
	}
	want.Candidates = want.Candidates[:min(len(want.Candidates), CandidateLimit)]
	if diff := cmp.Diff(want.Candidates, got.Candidates); diff != "" || got.Reason != want.Reason || got.Chosen != want.Chosen {
		t.Errorf("%s: index chose %v (%q), full scan %v (%q); candidates (-full scan +index):\n%s",
			what, got.Chosen, got.Reason, want.Chosen, want.Reason, diff)
		return false
	}
	return true
}

// The index makes Place's decision, on thousands of seeded random fleets
// and requests, also after the nodes changed under it one by one (Set,
// Update, Remove, holds), and with live health on top.
func TestIndexPlacesAsTheFullScan(t *testing.T) {
	fleets := 3000
	if testing.Short() {
		fleets = 500
	}
	for seed := range fleets {
		r := rand.New(rand.NewPCG(uint64(seed), 13))
		x := NewIndex()
		var ids []string
		uniform := seed%2 == 1
		for i := range 1 + r.IntN(120) {
			id := fmt.Sprintf("n%03d", i)
			ids = append(ids, id)
			x.Set(randomNode(r, id, uniform))
		}
		down := map[string]bool{}
		live := func(id string, h fleet.Health) fleet.Health {
			if down[id] {
				return fleet.HealthUnreachable
			}
			return h
		}
		for step := range 12 {
			req := randomRequest(r, ids)
			nodes := x.Nodes()
			for i := range nodes {
				Live(live).apply(&nodes[i])
			}
			want, wantErr := Place(nodes, req)
			res := fleet.Resources{CPU: 1, MemoryMB: 1024}
			got, gotErr := x.Place(req, live, res)
			if !sameDecision(t, fmt.Sprintf("seed %d step %d (%s)", seed, step, req.Strategy), got, gotErr, want, wantErr) {
				return
			}
			if gotErr == nil && r.IntN(2) == 0 {
				x.Release(got.Chosen.NodeID, res)
			}
			// Change the fleet one node at a time.
			id := ids[r.IntN(len(ids))]
			switch r.IntN(5) {
			case 0:
				x.Set(randomNode(r, id, uniform))
			case 1:
				x.Update(id, func(n *Node) { n.Reserved.CPU += float64(r.IntN(3)) - 1; n.Workspaces++ })
			case 2:
				down[id] = !down[id]
			case 3:
				x.Hold(id, req, live, fleet.Resources{MemoryMB: 2048})
			case 4:
				if len(ids) > 1 && r.IntN(3) == 0 {
					x.Remove(id)
					ids = append(ids[:0:0], ids...)
					for i, v := range ids {
						if v == id {
							ids = append(ids[:i], ids[i+1:]...)
							break
						}
					}
				}
			}
		}
	}
}

// A hold is seen by the next decision and undone by Release.
func TestIndexHoldAndRelease(t *testing.T) {
	x := NewIndex()
	x.Set(server("a", "eu", 8, 0, 16384, 0))
	x.Set(server("b", "eu", 8, 1, 16384, 0))
	req := starter(nil)
	d, err := x.Place(req, nil, req.Resources)
	if err != nil || d.Chosen.NodeID != "a" {
		t.Fatalf("first decision: %v %v, want a", d.Chosen, err)
	}
	// a now holds 2 cores: b (1 core used) is the emptier one.
	d, err = x.Place(req, nil, req.Resources)
	if err != nil || d.Chosen.NodeID != "b" {
		t.Fatalf("second decision: %v %v, want b", d.Chosen, err)
	}
	x.Release("a", req.Resources)
	x.Release("b", req.Resources)
	nodes := x.Nodes()
	if nodes[0].Reserved.CPU != 0 || nodes[1].Reserved.CPU != 1 || nodes[0].Workspaces != 0 {
		t.Errorf("after release: a reserves %v (%d workspaces), b %v; want 0, 0 and 1", nodes[0].Reserved.CPU, nodes[0].Workspaces, nodes[1].Reserved.CPU)
	}
	if !x.Hold("a", req, nil, fleet.Resources{CPU: 7}) || x.Hold("a", req, nil, req.Resources) {
		t.Errorf("Hold of 7 cores then 2 on an 8-core node: want true then false")
	}
}

// No overcommit under any interleaving: 1,000 concurrent decisions against
// 100 nodes with room for 500 workspaces place exactly 500, none past a
// node's capacity.
func TestIndexConcurrentDecisionsNeverOvercommit(t *testing.T) {
	x := NewIndex()
	for i := range 100 {
		x.Set(server(fmt.Sprintf("n%03d", i), "eu", 10, 0, 1<<20, 0))
	}
	req := starter(func(r *Request) { r.Resources = fleet.Resources{CPU: 2, MemoryMB: 1024} })
	var wg sync.WaitGroup
	var mu sync.Mutex
	placed, refused := map[string]int{}, 0
	for range 1000 {
		wg.Go(func() {
			d, err := x.Place(req, nil, req.Resources)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				placed[d.Chosen.NodeID]++
			case errors.Is(err, ErrNoCapacity):
				refused++
			default:
				t.Errorf("Place: %v", err)
			}
		})
	}
	wg.Wait()
	total := 0
	for id, n := range placed {
		total += n
		if n > 5 {
			t.Errorf("%s took %d workspaces of 2 cores on 10 cores", id, n)
		}
	}
	if total != 500 || refused != 500 {
		t.Errorf("placed %d, refused %d; want 500 and 500", total, refused)
	}
}

func BenchmarkIndexPlace(b *testing.B) {
	req := starter(func(r *Request) {
		r.Region = "eu"
		r.Architecture = "x86_64"
		r.Labels = map[string]string{"pool": "general"}
	})
	for _, n := range []int{10, 1_000, 10_000} {
		x := NewIndex()
		for _, node := range mixedFleet(n) {
			x.Set(node)
		}
		for _, s := range []Strategy{Spread, BestFit} {
			req.Strategy = s
			b.Run(fmt.Sprintf("%s/nodes=%d", s, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d, err := x.Place(req, nil, req.Resources)
					if err != nil {
						b.Fatal(err)
					}
					x.Release(d.Chosen.NodeID, req.Resources)
				}
			})
		}
	}
}
