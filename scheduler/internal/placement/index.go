package placement

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"berth/scheduler/internal/fleet"
	"berth/shared/wire"
)

// CandidateLimit is how many candidates Index.Place returns, best first:
// the chosen node and the ones a create falls back to when agents refuse.
const CandidateLimit = 8

// Index is the fleet kept between decisions so that one decision does not
// visit every node. It makes the same choice as Place over the same nodes
// (the index tests pin this on thousands of random fleets), in time that
// grows with the number of node classes, not of nodes, for spread, best_fit
// and affinity.
//
// Nodes are grouped by class: everything the static filters and the
// scores' request terms look at (region, architecture, GPU type, labels,
// total CPU and memory). A request skips the classes that cannot take it.
// Within a class, the active nodes are kept in two orders: by the spread
// key (CPU and memory used, in fractions of the totals: the spread score
// without the request's constant share) and by the best-fit key (CPU and
// memory left). A decision walks each class's order from its best end and
// stops at the first nodes that pass the live filters (health, resources,
// workspace slots), so it visits the nodes that cannot take the request in
// front of those that can: few when the fleet has room. The cost a change
// makes is one class's order moved by one node (a memmove).
//
// Round-robin decisions, and requests no node can take, run Place over the
// whole fleet: the first needs the count of every fitting node, the second
// the explanation of every rejection.
//
// Reservations are held in memory from the decision until the caller has
// committed them (Hold, Release), so that concurrent decisions see each
// other's choices. Safe for concurrent use.
type Index struct {
	mu      sync.Mutex
	slots   map[string]*slot
	all     []*slot // by slot number; nil where free
	free    []int32 // slot numbers free for reuse
	classes map[string]*class
	next    int // order of the next new node
}

// slot is one node of the index.
type slot struct {
	base   Node            // as last Set: Reserved and Workspaces are the committed ones
	held   fleet.Resources // held by decisions not yet committed
	heldN  int
	node   Node  // base plus what is held: what placement sees
	order  int   // registration order: ties go to the earliest, as Place's input order
	num    int32 // in Index.all and the class orders
	class  *class
	active bool    // in its class's orders
	spread sortKey // when active
	fit    sortKey // when active
}

// sortKey orders the members of a class for one strategy: k is the part of
// the score that varies within the class (smaller is better), sub the CPU
// part of it. Two nodes with equal keys have equal scores to the last bit:
// the class fixes the totals, and k and sub fix both parts.
type sortKey struct{ k, sub float64 }

// class is a set of nodes placement cannot tell apart by its static filters
// and its request terms.
type class struct {
	key    string
	sample Node            // the first member, for the class's static filters
	total  fleet.Resources // every member's Effective().Total CPU and memory
	// The active members (slot numbers: moving them costs no GC write
	// barriers) by (spread key, order) and by (best-fit key, order).
	spread, fit []int32
	size        int // members, active or not
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{slots: map[string]*slot{}, classes: map[string]*class{}}
}

// Len returns the number of nodes.
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.slots)
}

// Set adds the node or replaces it (matched by ID). Its Reserved and
// Workspaces are what is committed; what Hold holds on it stays held. A new
// node comes after the others in registration order.
func (x *Index) Set(n Node) {
	x.Commit(n, fleet.Resources{}, 0)
}

// Commit is Set that also gives back holds holds of res in all, at once:
// the reservations decisions held are now committed (in n), and no
// decision in between sees them twice or not at all.
func (x *Index) Commit(n Node, res fleet.Resources, holds int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.slots[n.ID]
	if !ok {
		s = &slot{order: x.next}
		x.next++
		x.slots[n.ID] = s
		if k := len(x.free); k > 0 {
			s.num, x.free = x.free[k-1], x.free[:k-1]
			x.all[s.num] = s
		} else {
			s.num = int32(len(x.all))
			x.all = append(x.all, s)
		}
	} else {
		x.unlink(s)
	}
	s.base = n
	s.held, s.heldN = s.held.Sub(res), s.heldN-holds
	x.link(s)
}

// Update changes the node id in place with fn (on its committed view) and
// reports whether it is in the index.
func (x *Index) Update(id string, fn func(*Node)) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.slots[id]
	if !ok {
		return false
	}
	x.unlink(s)
	fn(&s.base)
	s.base.ID = id
	x.link(s)
	return true
}

// Remove removes the node id.
func (x *Index) Remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s, ok := x.slots[id]; ok {
		x.unlink(s)
		delete(x.slots, id)
		x.all[s.num] = nil
		x.free = append(x.free, s.num)
	}
}

// Node returns node id as placement sees it (holds included).
func (x *Index) Node(id string) (Node, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s, ok := x.slots[id]; ok {
		return s.node, true
	}
	return Node{}, false
}

// Nodes returns every node as placement sees it (holds included), in
// registration order.
func (x *Index) Nodes() []Node {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.nodesLocked()
}

func (x *Index) nodesLocked() []Node {
	ss := slices.Collect(maps.Values(x.slots))
	slices.SortFunc(ss, func(a, b *slot) int { return cmp.Compare(a.order, b.order) })
	out := make([]Node, len(ss))
	for i, s := range ss {
		out[i] = s.node
	}
	return out
}

// Live is a node's health now, given the one it was set with: what the
// health checks say, or unreachable for a server a move must avoid. nil
// keeps the health the node was set with.
type Live func(id string, set fleet.Health) fleet.Health

// apply sets n's health as live says.
func (live Live) apply(n *Node) {
	if live != nil {
		n.Health = live(n.ID, n.Health)
	}
}

// Place decides like Place over the index's nodes as live shows them, and
// holds req's reservation res on the chosen node (see Hold). The Decision
// has at most CandidateLimit candidates and no Explanations when it
// succeeds; when it fails it is Place's, explanations included.
func (x *Index) Place(req Request, live Live, res fleet.Resources) (Decision, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	d, ok := x.fastLocked(req, live)
	if !ok {
		nodes := x.nodesLocked()
		for i := range nodes {
			live.apply(&nodes[i])
		}
		var err error
		if d, err = Place(nodes, req); err != nil {
			return d, err
		}
		if len(d.Candidates) > CandidateLimit {
			d.Candidates = d.Candidates[:CandidateLimit]
		}
	}
	x.holdLocked(x.slots[d.Chosen.NodeID], res, +1)
	return d, nil
}

// Hold holds res on node id for a decision not yet committed, if the node
// still passes every filter for req as live shows it; it reports whether it
// did. Release undoes it.
func (x *Index) Hold(id string, req Request, live Live, res fleet.Resources) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.slots[id]
	if !ok {
		return false
	}
	n := s.node
	live.apply(&n)
	q := newQuery(req)
	c := n.Effective()
	if _, rejected := filterNode(&n, &c, &q); rejected {
		return false
	}
	x.holdLocked(s, res, +1)
	return true
}

// Release gives back what Place or Hold held on node id for res.
func (x *Index) Release(id string, res fleet.Resources) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s, ok := x.slots[id]; ok {
		x.holdLocked(s, res, -1)
	}
}

// holdLocked changes what is held on the slot. Its class stays: a class
// does not depend on reservations.
func (x *Index) holdLocked(s *slot, res fleet.Resources, sign int) {
	if s == nil {
		return
	}
	if sign > 0 {
		s.held = s.held.Add(res)
	} else {
		s.held = s.held.Sub(res)
	}
	s.heldN += sign
	x.rekey(s)
}

// view sets the slot's view: its committed node plus what is held.
func (s *slot) view() Capacity {
	s.node = s.base
	s.node.Reserved = s.base.Reserved.Add(s.held)
	s.node.Workspaces = s.base.Workspaces + s.heldN
	return s.node.Effective()
}

// link computes the slot's view, class and keys and puts it in its class.
func (x *Index) link(s *slot) {
	c := s.view()
	key := classKey(&s.node, &c)
	cl, ok := x.classes[key]
	if !ok {
		cl = &class{key: key, sample: s.node, total: c.Total}
		x.classes[key] = cl
	}
	s.class = cl
	cl.size++
	s.active = s.node.State == fleet.StateActive
	if s.active {
		s.setKeys(&c)
		cl.spread = x.insertSorted(cl.spread, s, spreadOf)
		cl.fit = x.insertSorted(cl.fit, s, fitOf)
	}
}

// rekey recomputes the slot's view and keys after its reservations changed
// and moves it in its class's orders.
func (x *Index) rekey(s *slot) {
	cl := s.class
	if s.active {
		cl.spread = x.removeSorted(cl.spread, s, spreadOf)
		cl.fit = x.removeSorted(cl.fit, s, fitOf)
	}
	c := s.view()
	if s.active {
		s.setKeys(&c)
		cl.spread = x.insertSorted(cl.spread, s, spreadOf)
		cl.fit = x.insertSorted(cl.fit, s, fitOf)
	}
}

func (s *slot) setKeys(c *Capacity) {
	r := &s.node.Reserved
	s.spread = sortKey{fraction(r.CPU, c.Total.CPU) + fraction(float64(r.MemoryMB), float64(c.Total.MemoryMB)), r.CPU}
	s.fit = sortKey{fraction(c.Available.CPU, c.Total.CPU) + fraction(float64(c.Available.MemoryMB), float64(c.Total.MemoryMB)), c.Available.CPU}
}

// unlink takes the slot out of its class.
func (x *Index) unlink(s *slot) {
	cl := s.class
	if cl == nil {
		return
	}
	if s.active {
		cl.spread = x.removeSorted(cl.spread, s, spreadOf)
		cl.fit = x.removeSorted(cl.fit, s, fitOf)
	}
	cl.size--
	if cl.size == 0 {
		delete(x.classes, cl.key)
	}
	s.class, s.active = nil, false
}

func spreadOf(s *slot) sortKey { return s.spread }
func fitOf(s *slot) sortKey    { return s.fit }

func compareKeys(a, b sortKey) int { return cmp.Or(cmp.Compare(a.k, b.k), cmp.Compare(a.sub, b.sub)) }

func compareSlots(a, b *slot, key func(*slot) sortKey) int {
	return cmp.Or(compareKeys(key(a), key(b)), cmp.Compare(a.order, b.order))
}

func (x *Index) insertSorted(ss []int32, s *slot, key func(*slot) sortKey) []int32 {
	i, _ := slices.BinarySearchFunc(ss, s, func(e int32, t *slot) int { return compareSlots(x.all[e], t, key) })
	return slices.Insert(ss, i, s.num)
}

func (x *Index) removeSorted(ss []int32, s *slot, key func(*slot) sortKey) []int32 {
	i, ok := slices.BinarySearchFunc(ss, s, func(e int32, t *slot) int { return compareSlots(x.all[e], t, key) })
	if !ok || ss[i] != s.num {
		i = slices.Index(ss, s.num) // cannot happen: keys change only through unlink and link
	}
	return slices.Delete(ss, i, i+1)
}

// fraction is part/total, or 0 when the total is unknown: the share of the
// scores (percent) that varies from node to node within a class.
func fraction(part, total float64) float64 {
	if total <= 0 {
		return 0
	}
	return part / total
}

// classKey names the node's class: the fields the static filters and the
// scores' request terms read.
func classKey(n *Node, c *Capacity) string {
	var b strings.Builder
	b.WriteString(n.Region)
	b.WriteByte(0)
	b.WriteString(wire.NormalizeArch(n.Architecture))
	b.WriteByte(0)
	b.WriteString(n.GPUType)
	b.WriteByte(0)
	b.WriteString(strconv.FormatBool(n.GPUCount > 0))
	b.WriteByte(0)
	b.WriteString(strconv.FormatFloat(c.Total.CPU, 'g', -1, 64))
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(c.Total.MemoryMB, 10))
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(n.Labels[k])
	}
	return b.String()
}

// staticFit reports whether the class's nodes pass the filters that only
// read what the class fixes: GPU type, architecture, labels, region.
func (cl *class) staticFit(q *query) bool {
	n := &cl.sample
	for _, check := range [...]func(*Node, *Capacity, *query) (string, string){checkGPU, checkArchitecture, checkLabels, checkRegion} {
		if kind, _ := check(n, nil, q); kind != "" {
			return false
		}
	}
	return true
}

// liveFit is what checkHealth, checkState, checkResources and
// checkMaxWorkspaces decide (the filters that read what changes from node
// to node), without their reasons.
func liveFit(n *Node, health fleet.Health, c *Capacity, q *query) bool {
	_, fits := fleet.Fits(c.Available, q.Resources)
	return fits && fleet.Schedulable(health, n.State) && fleet.RoomForWorkspace(n.MaxWorkspaces, n.Workspaces)
}

// keyTolerance is how far past the last candidate a class walk goes on, so
// that nodes whose keys differ by rounding only are all scored: the key and
// the score round differently.
const keyTolerance = 1e-9

// fastLocked is the decision over the class orders; false when Place must
// decide (round robin, or no candidate).
func (x *Index) fastLocked(req Request, live Live) (Decision, bool) {
	d := Decision{Strategy: ParseStrategy(string(req.Strategy))}
	if d.Strategy == RoundRobin {
		return d, false
	}
	q := newQuery(req)
	orderOf, key, score := func(cl *class) []int32 { return cl.spread }, spreadOf, spreadScore
	if d.Strategy == BestFit {
		orderOf, key, score = func(cl *class) []int32 { return cl.fit }, fitOf, bestFitScore
	}
	var found []candidate
	for _, cl := range x.classes {
		if !cl.staticFit(&q) {
			continue
		}
		order := orderOf(cl)
		if d.Strategy == BestFit {
			order = order[x.firstFit(cl, &q):]
		}
		found = x.walk(found, order, key, &q, live, score)
	}
	if len(found) == 0 {
		return d, false
	}
	slices.SortFunc(found, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.index, b.index))
	})
	d.Reason = reasonSpread
	if d.Strategy == BestFit {
		d.Reason = reasonBestFit
	}
	if d.Strategy == Affinity {
		d.Reason = reasonAffinityFallback
		if x.frontLocked(&found, q.AffinityServerID, &q, live, score) {
			found[0].score = affinityScore
			d.Reason = reasonAffinity
		}
	}
	if x.frontLocked(&found, q.HomeServerID, &q, live, score) {
		d.Reason = reasonHome
	}
	found = found[:min(len(found), CandidateLimit)]
	d.Candidates = make([]Candidate, len(found))
	for i, c := range found {
		d.Candidates[i] = Candidate{NodeID: c.node.ID, Hostname: c.node.Hostname, Score: c.score}
	}
	d.Chosen = d.Candidates[0]
	return d, true
}

// firstFit is where in the best-fit order the nodes that may fit q begin:
// a node with less CPU or memory left than q needs has a smaller key than
// q's own shares (division and addition round monotonically), so every node
// before that is skipped in one search, however many are full.
func (x *Index) firstFit(cl *class, q *query) int {
	var kmin float64
	if q.CPU > 0 {
		kmin += fraction(max(0, q.CPU-1e-9), cl.total.CPU) // fleet.Fits' CPU tolerance
	}
	if q.MemoryMB > 0 {
		kmin += fraction(float64(q.MemoryMB), float64(cl.total.MemoryMB))
	}
	kmin -= keyTolerance * (1 + kmin) // never skip too far
	return sort.Search(len(cl.fit), func(i int) bool { return x.all[cl.fit[i]].fit.k >= kmin })
}

// walk adds the best nodes of one class order that pass the live filters
// to found: at least CandidateLimit of them when there are, and every node
// whose key is so close to the last one taken that rounding could put it
// in front. Of a run of nodes with equal keys (equal scores) only the first
// CandidateLimit that pass can matter: the rest of the run is skipped.
func (x *Index) walk(found []candidate, order []int32, key func(*slot) sortKey, q *query, live Live,
	score func(*candidate, *query) float64) []candidate {
	at := func(i int) sortKey { return key(x.all[order[i]]) }
	taken, last := 0, sortKey{}
	for i := 0; i < len(order); {
		run := at(i)
		if taken >= CandidateLimit && run.k > last.k+keyTolerance*(1+last.k) {
			break
		}
		inRun := 0
		for ; i < len(order) && compareKeys(at(i), run) == 0; i++ {
			if inRun == CandidateLimit {
				// Skip the rest of the run: its nodes come later in order
				// with the same score.
				i += sort.Search(len(order)-i, func(j int) bool { return compareKeys(at(i+j), run) > 0 })
				break
			}
			s := x.all[order[i]]
			health := s.node.Health
			if live != nil {
				health = live(s.node.ID, health)
			}
			c := s.node.Effective()
			if !liveFit(&s.node, health, &c, q) {
				continue
			}
			cand := candidate{node: &s.node, index: s.order, capacity: c}
			cand.score = score(&cand, q)
			found = append(found, cand)
			taken, inRun, last = taken+1, inRun+1, run
		}
	}
	return found
}

// frontLocked moves node id to the front of found when it passes every
// filter (scoring it if the walks did not reach it), and reports whether
// it did.
func (x *Index) frontLocked(found *[]candidate, id string, q *query, live Live, score func(*candidate, *query) float64) bool {
	if id == "" {
		return false
	}
	if i := slices.IndexFunc(*found, func(c candidate) bool { return c.node.ID == id }); i >= 0 {
		moveToFront(*found, i)
		return true
	}
	s, ok := x.slots[id]
	if !ok {
		return false
	}
	n := s.node
	live.apply(&n)
	c := n.Effective()
	if _, rejected := filterNode(&n, &c, q); rejected {
		return false
	}
	cand := candidate{node: &s.node, index: s.order, capacity: c}
	cand.score = score(&cand, q)
	*found = slices.Insert(*found, 0, cand)
	return true
}
