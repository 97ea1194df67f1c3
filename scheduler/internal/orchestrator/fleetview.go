package orchestrator

import (
	"context"
	"errors"
	"sync"
	"time"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
)

// fleetView is the fleet in memory, as placement sees it: the registry's
// server rows and what their workspaces reserve (followed through
// registry.Watch after every commit), and what each agent gossips
// (followed through the pool's Watch), in a placement.Index. Health is read
// from the tracker at decision time. A create reads no server or
// reservation row from SQLite: the index answers, and the registry's
// reservation transaction checks the capacity again (the safety net).
//
// It is built on first use: the registry file is read once (every server
// row, and the reservations summed when the registry opened).
type fleetView struct {
	c *core

	mu       sync.Mutex
	built    bool
	watching bool   // the gossip view tells of changes (MemberWatcher)
	unwatch  func() // stops registry.Watch
	servers  map[string]registry.Server
	usage    map[string]registry.Usage
	members  map[string]gossip.Member
	index    *placement.Index
	// holds are the reservations decisions hold in the index, by
	// workspace, until the registry commits them (registryChanged gives
	// them back in the same step) or they are released.
	holds map[string]heldRoom
}

// heldRoom is a reservation held in the index for a workspace.
type heldRoom struct {
	server string
	res    fleet.Resources
}

// held records that the index holds res on server for workspace id.
func (v *fleetView) held(id, server string, res fleet.Resources) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.holds == nil {
		v.holds = map[string]heldRoom{}
	}
	v.holds[id] = heldRoom{server, res}
}

// release gives back what the index still holds for workspace id: a
// reservation refused or abandoned (a committed one was given back when
// the registry reported it).
func (v *fleetView) release(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if h, ok := v.holds[id]; ok {
		delete(v.holds, id)
		v.index.Release(h.server, h.res)
	}
}

// MemberWatcher is a gossip view that tells of each member change as it
// happens (gossip.Pool). Without it the view reads Members once.
type MemberWatcher interface {
	Watch(func(gossip.Member))
}

// ensure builds the view if it is not yet built.
func (v *fleetView) ensure(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.built {
		if !v.watching {
			v.readMembersLocked()
			for _, s := range v.servers { // every node is in the index: its order stays
				v.index.Set(v.nodeLocked(s))
			}
		}
		return nil
	}
	// Follow first, then read: a change committed meanwhile waits for mu
	// and is applied on top of what is read here.
	if v.unwatch != nil {
		v.unwatch() // a view being built again
	}
	v.usage, v.unwatch = v.c.DB.Watch(v.registryChanged)
	servers, err := v.c.DB.ListServers(ctx)
	if err != nil {
		return err
	}
	v.members = map[string]gossip.Member{}
	if w, ok := v.c.Members.(MemberWatcher); ok {
		w.Watch(v.memberChanged)
		v.watching = true
	}
	if v.c.Members == nil {
		v.watching = true // no gossip: nothing changes
	}
	v.readMembersLocked()
	v.servers = make(map[string]registry.Server, len(servers))
	v.index = placement.NewIndex()
	v.holds = nil               // they were in the index this one replaces
	for _, s := range servers { // registration order: placement's tie-break
		v.servers[s.ID] = s
		v.index.Set(v.nodeLocked(s))
	}
	v.built = true
	return nil
}

// readMembersLocked reads the whole gossip view: once when the view is
// built, and on every use when the gossip view cannot tell of changes (a
// MemberWatcher tells of each as it comes).
func (v *fleetView) readMembersLocked() {
	if v.c.Members != nil {
		for _, m := range v.c.Members.Members() {
			v.members[m.Name] = m
		}
	}
}

// registryChanged applies what one commit changed (registry.Watch).
func (v *fleetView) registryChanged(changes []registry.Change) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.built {
		return // ensure reads it all
	}
	for _, ch := range changes {
		if ch.Reset { // the registry was replaced: read it all again
			v.built = false
			return
		}
		v.usage[ch.ServerID] = ch.Usage
		if ch.ServerRow {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := v.c.DB.GetServer(ctx, ch.ServerID)
			cancel()
			switch {
			case errors.Is(err, registry.ErrNotFound):
				delete(v.servers, ch.ServerID)
				delete(v.usage, ch.ServerID)
				v.index.Remove(ch.ServerID)
				continue
			case err != nil:
				// The view would go stale: build it again on next use.
				v.c.log.Error("fleet view: read changed server; rebuilding the view", "server", ch.ServerID, "error", err)
				v.built = false
				return
			}
			v.servers[s.ID] = s
		}
		s, ok := v.servers[ch.ServerID]
		if !ok {
			continue
		}
		var res fleet.Resources
		holds := 0
		for _, id := range ch.Moved {
			if h, ok := v.holds[id]; ok && h.server == ch.ServerID {
				res, holds = res.Add(h.res), holds+1
				delete(v.holds, id)
			}
		}
		v.index.Commit(v.nodeLocked(s), res, holds)
	}
}

// memberChanged applies a gossip member's change (MemberWatcher).
func (v *fleetView) memberChanged(m gossip.Member) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.built {
		return
	}
	v.members[m.Name] = m
	if s, ok := v.servers[m.Name]; ok {
		v.index.Set(v.nodeLocked(s))
	}
}

// nodeLocked is server s as placement sees it: the registry row, what its
// workspaces reserve, and the capacity its agent gossips. Health is the
// row's; live health is applied at decision time (live).
func (v *fleetView) nodeLocked(s registry.Server) placement.Node {
	u := v.usage[s.ID]
	n := placement.Node{
		ID: s.ID, Name: s.Name, Hostname: s.Hostname, Region: s.Region, Architecture: s.Architecture,
		Labels: s.Labels, State: s.State, Health: s.Health,
		GPUType: s.GPUType, GPUCount: s.GPUCount, MaxWorkspaces: s.MaxWorkspaces, Workspaces: u.Workspaces,
		Configured: fleet.Resources{CPU: s.TotalCPU, MemoryMB: s.TotalMemoryMB, DiskGB: s.TotalDiskGB, BandwidthMbps: s.TotalBandwidthMbps},
		Reserved:   u.Reserved,
	}
	if m, ok := v.members[s.ID]; ok && m.MetaErr == "" && m.State != gossip.StateDead && m.State != gossip.StateLeft {
		meta := m.Meta
		n.Real = placement.Measured{
			CPU: float64(meta.CPUMilli) / 1000 * max(v.c.cfg.CPUOvercommit, 1), MemoryMB: meta.MemTotalMB, MemoryFreeMB: meta.MemFreeMB,
			DiskGB: meta.DiskTotalGB, DiskFreeGB: meta.DiskFreeGB,
		}
		if n.Architecture == "" {
			n.Architecture = meta.Architecture
		}
		if n.GPUType == "" && meta.GPUCount > 0 {
			n.GPUType, n.GPUCount = meta.GPUType, meta.GPUCount
		}
	}
	return n
}

// live is the health the tracker sees now (the row's when it has no
// opinion), and unreachable for avoid.
func (c *core) live(avoid string) placement.Live {
	return func(id string, set fleet.Health) fleet.Health {
		if id == avoid {
			return fleet.HealthUnreachable
		}
		if c.Health != nil {
			if h, ok := c.Health.Health(id); ok {
				return h
			}
		}
		return set
	}
}

// snapshot is the view of the servers ids (all of them when ids is nil),
// with live health (avoid unreachable).
func (v *fleetView) snapshot(ctx context.Context, ids []string, avoid string) (Snapshot, error) {
	if err := v.ensure(ctx); err != nil {
		return Snapshot{}, err
	}
	var nodes []placement.Node
	if ids == nil {
		nodes = v.index.Nodes()
	} else {
		for _, id := range ids {
			if n, ok := v.index.Node(id); ok {
				nodes = append(nodes, n)
			}
		}
	}
	live := v.c.live(avoid)
	v.mu.Lock()
	defer v.mu.Unlock()
	snap := Snapshot{byID: map[string]int{}}
	for _, n := range nodes {
		s, ok := v.servers[n.ID]
		if _, dup := snap.byID[n.ID]; !ok || dup {
			continue
		}
		n.Health = live(n.ID, n.Health)
		snap.byID[n.ID] = len(snap.Nodes)
		snap.Servers = append(snap.Servers, s)
		snap.Nodes = append(snap.Nodes, n)
	}
	return snap, nil
}
