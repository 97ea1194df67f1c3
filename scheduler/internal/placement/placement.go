package placement

import (
	"fmt"
	"slices"
	"strings"
)

// Decision is the outcome of Place: the chosen node, the ranking, and why
// every node was or was not a candidate.
type Decision struct {
	// Strategy is the strategy applied (the request's, normalised).
	Strategy Strategy
	// Chosen is Candidates[0]; zero when placement failed.
	Chosen Candidate
	// Reason is the contract's reason for the choice, e.g. "Selected server
	// with lowest utilization"; empty when placement failed.
	Reason string
	// Candidates are the nodes that passed every filter, best first. The
	// caller tries them in order when an agent refuses a workspace.
	Candidates []Candidate
	// Explanations has one entry per input node, in input order.
	Explanations []Explanation
}

// Candidate is a node that passed every filter, with its score.
type Candidate struct {
	NodeID   string
	Hostname string
	Score    float64
}

// Explanation says what placement made of one node: either the filter that
// rejected it, or its score.
type Explanation struct {
	NodeID string
	// Kind groups rejections for Summary, e.g. "insufficient memory" or
	// "state draining"; empty when the node is a candidate.
	Kind string
	// Reason is the full rejection, e.g. "insufficient memory: need 4096MB,
	// have 1024MB"; empty when the node is a candidate.
	Reason string
	// Score is the candidate's score; 0 when rejected.
	Score float64
}

// Rejected reports whether a filter rejected the node.
func (e Explanation) Rejected() bool { return e.Kind != "" }

// Place chooses a node for req among nodes.
//
// It filters the nodes (see the package documentation), ranks the rest by
// req.Strategy and returns the Decision. When no node is left it returns the
// Decision, whose Explanations say why, and one of ErrNoServers,
// ErrNoHealthyServers, ErrNoCapacity or a *RegionError (ErrNoRegionCapacity).
func Place(nodes []Node, req Request) (Decision, error) {
	d := Decision{
		Strategy:     ParseStrategy(string(req.Strategy)),
		Explanations: make([]Explanation, len(nodes)),
	}
	if len(nodes) == 0 {
		return d, ErrNoServers
	}

	q := newQuery(req)
	passed := make([]candidate, 0, len(nodes))
	var unavailable, regionOnly int
	for i := range nodes {
		n := &nodes[i]
		c := n.Effective()
		d.Explanations[i].NodeID = n.ID
		r, rejected := filterNode(n, &c, &q)
		if !rejected {
			passed = append(passed, candidate{node: n, index: i, capacity: c})
			continue
		}
		d.Explanations[i].Kind, d.Explanations[i].Reason = r.kind, r.reason
		switch r.stage {
		case stageAvailable:
			unavailable++
		case stageRegion:
			regionOnly++
		}
	}

	switch {
	case len(passed) > 0:
	case regionOnly > 0:
		return d, &RegionError{Region: req.Region}
	case unavailable == len(nodes):
		return d, ErrNoHealthyServers
	default:
		return d, ErrNoCapacity
	}

	d.Reason = rank(passed, &q, d.Strategy)
	d.Candidates = make([]Candidate, len(passed))
	for i, c := range passed {
		d.Candidates[i] = Candidate{NodeID: c.node.ID, Hostname: c.node.Hostname, Score: c.score}
		d.Explanations[c.index].Score = c.score
	}
	d.Chosen = d.Candidates[0]
	return d, nil
}

// Summary describes the rejections in one line, most common first, e.g.
// "insufficient memory on 3 servers, region mismatch on 1 server".
func (d Decision) Summary() string {
	type group struct {
		kind  string
		count int
	}
	var groups []group
	for _, e := range d.Explanations {
		if !e.Rejected() {
			continue
		}
		i := slices.IndexFunc(groups, func(g group) bool { return g.kind == e.Kind })
		if i < 0 {
			i = len(groups)
			groups = append(groups, group{kind: e.Kind})
		}
		groups[i].count++
	}
	switch {
	case len(d.Explanations) == 0:
		return "no servers"
	case len(groups) == 0:
		return fmt.Sprintf("all %d %s eligible", len(d.Explanations), servers(len(d.Explanations)))
	}
	slices.SortStableFunc(groups, func(a, b group) int { return b.count - a.count })
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprintf("%s on %d %s", g.kind, g.count, servers(g.count))
	}
	return strings.Join(parts, ", ")
}

func servers(n int) string {
	if n == 1 {
		return "server"
	}
	return "servers"
}
