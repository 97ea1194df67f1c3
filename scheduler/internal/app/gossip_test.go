package app

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// fakeServers is a registry's server list that a test changes.
type fakeServers struct {
	mu    sync.Mutex
	ids   []string
	err   error
	lists int
}

func (f *fakeServers) list(context.Context) ([]registry.ServerAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.err != nil {
		return nil, f.err
	}
	var out []registry.ServerAddr
	for _, id := range f.ids {
		out = append(out, registry.ServerAddr{ID: id})
	}
	return out, nil
}

func (f *fakeServers) set(err error, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids, f.err = ids, err
}

func agentMember(name string) gossip.Member {
	return gossip.Member{Name: name, Meta: wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: name}}
}

// Admit answers from the set alone (memberlist asks with its lock held);
// the loop brings registrations and removals in; a registry error keeps
// the previous set.
func TestRegisteredAgentsAdmit(t *testing.T) {
	f := &fakeServers{ids: []string{"ws-1"}}
	r, err := newRegisteredAgents(context.Background(), f.list)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Admit(agentMember("ws-1")); err != nil {
		t.Errorf("registered ws-1 refused: %v", err)
	}
	if err := r.Admit(agentMember("ws-2")); !errors.Is(err, gossip.ErrUnregistered) || !strings.Contains(err.Error(), `"ws-2"`) {
		t.Errorf("unknown ws-2: err = %v, want ErrUnregistered", err)
	}
	if err := r.Admit(gossip.Member{Name: "scheduler", Meta: wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler"}}); err != nil {
		t.Errorf("scheduler refused: %v", err)
	}
	f.mu.Lock()
	lists := f.lists
	f.mu.Unlock()
	if lists != 1 {
		t.Errorf("the registry was read %d times by Admit, want only the first load", lists)
	}

	r.reloadEvery = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, hclog.NewNullLogger()) }()
	defer func() { cancel(); <-done }()

	f.set(nil, "ws-1", "ws-2") // registered through the admin API
	testutil.Eventually(t, 2*time.Second, "ws-2 admitted once registered", func() bool { return r.Admit(agentMember("ws-2")) == nil })
	f.set(errors.New("db locked"))
	f.mu.Lock()
	before := f.lists
	f.mu.Unlock()
	testutil.Eventually(t, 2*time.Second, "the loop read the failing registry", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.lists > before
	})
	if err := r.Admit(agentMember("ws-2")); err != nil {
		t.Errorf("ws-2 during a registry error: %v, want the previous set kept", err)
	}
	f.set(nil, "ws-1") // ws-2 removed
	testutil.Eventually(t, 2*time.Second, "ws-2 refused once removed", func() bool { return r.Admit(agentMember("ws-2")) != nil })
}
