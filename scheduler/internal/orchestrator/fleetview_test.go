package orchestrator_test

import (
	"context"
	"sync"
	"testing"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// pushedMembers is a gossip view that tells of changes (MemberWatcher), as
// gossip.Pool does: Members is read once, then only pushes count.
type pushedMembers struct {
	mu      sync.Mutex
	members []gossip.Member
	watch   func(gossip.Member)
}

func (p *pushedMembers) Members() []gossip.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gossip.Member(nil), p.members...)
}

func (p *pushedMembers) Watch(fn func(gossip.Member)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watch = fn
}

func (p *pushedMembers) push(m gossip.Member) {
	p.mu.Lock()
	watch := p.watch
	p.mu.Unlock()
	watch(m)
}

func agentMember(id string, freeMB int64) gossip.Member {
	return gossip.Member{Name: id, State: gossip.StateAlive,
		Meta: wire.NodeMeta{CPUMilli: 64000, MemTotalMB: 1 << 20, MemFreeMB: freeMB}}
}

// The fleet view follows what gossip pushes and what the registry commits,
// without reading the whole fleet again: a server whose agent reports its
// memory gone, then one an operator drains, stop taking workspaces at the
// next decision.
func TestFleetViewFollowsGossipAndRegistry(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 8, "ws-1", "ws-2", "ws-3")
	gossiped := &pushedMembers{members: []gossip.Member{agentMember("ws-1", 1<<20), agentMember("ws-2", 1<<20), agentMember("ws-3", 1<<20)}}
	o := r.with(func(_ *orchestrator.Config, d *orchestrator.Deps) { d.Members = gossiped })
	placedOn := func(id string) string {
		t.Helper()
		ws, err := o.Create(ctx, createReq(id, "u1"))
		if err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		return ws.ServerID
	}
	placedOn("w0") // builds the view
	gossiped.push(agentMember("ws-1", 100))
	gossiped.push(agentMember("ws-2", 100))
	for _, id := range []string{"w1", "w2"} {
		if got := placedOn(id); got != "ws-3" {
			t.Errorf("%s placed on %s, want ws-3: the others' agents report 100 MB free", id, got)
		}
	}
	gossiped.push(agentMember("ws-1", 1<<20))
	draining := fleet.StateDraining
	if _, err := r.db.UpdateServer(ctx, "ws-3", registry.ServerPatch{State: &draining}); err != nil {
		t.Fatal(err)
	}
	if got := placedOn("w3"); got != "ws-1" {
		t.Errorf("w3 placed on %s, want ws-1: ws-2 has no memory, ws-3 drains", got)
	}
}
