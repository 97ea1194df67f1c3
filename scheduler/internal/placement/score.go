package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// The contract's reasons for a successful placement (§11.2 item 5).
const (
	reasonSpread           = "Selected server with lowest utilization"
	reasonBestFit          = "Selected server for best resource fit"
	reasonAffinity         = "Placed on preferred affinity server"
	reasonAffinityFallback = "Affinity server unavailable, used spread placement"
	reasonRoundRobinFormat = "Round-robin selection (index %d)"
	reasonHome             = "Placed on the server holding the workspace's home directory"

	affinityScore   = 100
	roundRobinScore = 50
)

// candidate is a node that passed every filter, while it is being ranked.
type candidate struct {
	node     *Node
	index    int // in the input
	capacity Capacity
	score    float64
}

// rank scores the candidates for the strategy, orders them best first and
// returns the reason for the first one; the node holding the workspace's
// home, when it is a candidate, goes first whatever the strategy. Equal
// scores keep input order.
func rank(cs []candidate, q *query, s Strategy) string {
	reason := rankStrategy(cs, q, s)
	if q.HomeServerID == "" {
		return reason
	}
	i := slices.IndexFunc(cs, func(c candidate) bool { return c.node.ID == q.HomeServerID })
	if i < 0 {
		return reason
	}
	moveToFront(cs, i)
	return reasonHome
}

func rankStrategy(cs []candidate, q *query, s Strategy) string {
	switch s {
	case BestFit:
		scoreAndSort(cs, q, bestFitScore)
		return reasonBestFit
	case Affinity:
		scoreAndSort(cs, q, spreadScore)
		i := slices.IndexFunc(cs, func(c candidate) bool {
			return q.AffinityServerID != "" && c.node.ID == q.AffinityServerID
		})
		if i < 0 {
			return reasonAffinityFallback
		}
		cs[i].score = affinityScore
		moveToFront(cs, i)
		return reasonAffinity
	case RoundRobin:
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(strings.Compare(a.node.ID, b.node.ID), cmp.Compare(a.index, b.index))
		})
		i := int(q.Sequence % uint64(len(cs)))
		// The chosen one first, then the ones after it, wrapping around.
		copy(cs, append(slices.Clone(cs[i:]), cs[:i]...))
		for j := range cs {
			cs[j].score = roundRobinScore
		}
		return fmt.Sprintf(reasonRoundRobinFormat, i)
	default:
		scoreAndSort(cs, q, spreadScore)
		return reasonSpread
	}
}

// moveToFront moves cs[i] to the front, keeping the order of the others.
func moveToFront(cs []candidate, i int) {
	c := cs[i]
	copy(cs[1:i+1], cs[:i])
	cs[0] = c
}

func scoreAndSort(cs []candidate, q *query, score func(*candidate, *query) float64) {
	for i := range cs {
		cs[i].score = score(&cs[i], q)
	}
	// Highest score first; on equal scores the first in input order wins.
	slices.SortFunc(cs, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.index, b.index))
	})
}

// spreadScore is 100 minus the mean of the CPU and memory utilisation (in
// percent) the node would have with the request placed on it: emptier nodes
// score higher. Used is what berth has reserved; a resource of unknown total
// counts as fully used.
func spreadScore(c *candidate, q *query) float64 {
	total, used := c.capacity.Total, c.node.Reserved
	uCPU := percent(used.CPU+q.CPU, total.CPU)
	uMem := percent(float64(used.MemoryMB+q.MemoryMB), float64(total.MemoryMB))
	return 100 - (uCPU+uMem)/2
}

// bestFitScore is 100 minus the mean of the CPU and memory (in percent of the
// total) the node would have left with the request placed on it: fuller
// nodes score higher. A resource of unknown total counts as 100% left, as in
// the contract.
func bestFitScore(c *candidate, q *query) float64 {
	total, avail := c.capacity.Total, c.capacity.Available
	rCPU := percent(avail.CPU-q.CPU, total.CPU)
	rMem := percent(float64(avail.MemoryMB-q.MemoryMB), float64(total.MemoryMB))
	return 100 - (rCPU+rMem)/2
}

// percent returns part/total×100, or 100 when the total is unknown (≤ 0).
func percent(part, total float64) float64 {
	if total <= 0 {
		return 100
	}
	return part / total * 100
}
