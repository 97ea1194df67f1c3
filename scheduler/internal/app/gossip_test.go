package app

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

func TestRegisteredAgentsAdmit(t *testing.T) {
	var mu sync.Mutex
	ids := []string{"ws-1"}
	lists := 0
	r := newRegisteredAgents(func(context.Context) ([]registry.Server, error) {
		mu.Lock()
		defer mu.Unlock()
		lists++
		var out []registry.Server
		for _, id := range ids {
			out = append(out, registry.Server{ID: id})
		}
		return out, nil
	})
	r.reloadEvery = 50 * time.Millisecond
	agent := func(name string) gossip.Member {
		return gossip.Member{Name: name, Meta: wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: name}}
	}
	if err := r.Admit(agent("ws-1")); err != nil {
		t.Errorf("registered ws-1 refused: %v", err)
	}
	if err := r.Admit(agent("ws-2")); !errors.Is(err, gossip.ErrUnregistered) || !strings.Contains(err.Error(), `"ws-2"`) {
		t.Errorf("unknown ws-2: err = %v, want ErrUnregistered", err)
	}
	if err := r.Admit(gossip.Member{Name: "scheduler", Meta: wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler"}}); err != nil {
		t.Errorf("scheduler refused: %v", err)
	}
	// Refused again at once without a reload: memberlist asks on every
	// alive message, with its lock held.
	before := lists
	r.Admit(agent("ws-2"))
	if lists != before {
		t.Errorf("a miss within reloadEvery reloaded the registry")
	}
	mu.Lock()
	ids = append(ids, "ws-2") // registered through the admin API
	mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for r.Admit(agent("ws-2")) != nil {
		if time.Now().After(deadline) {
			t.Fatal("ws-2 still refused 2s after it was registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A registry that cannot be read refuses unknown names with its error but
// keeps admitting the servers it knew.
func TestRegisteredAgentsRegistryError(t *testing.T) {
	var fail bool
	r := newRegisteredAgents(func(context.Context) ([]registry.Server, error) {
		if fail {
			return nil, errors.New("db locked")
		}
		return []registry.Server{{ID: "ws-1"}}, nil
	})
	r.maxAge, r.reloadEvery = 0, 0 // reload on every question
	agent := func(name string) gossip.Member {
		return gossip.Member{Name: name, Meta: wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: name}}
	}
	if err := r.Admit(agent("ws-1")); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := r.Admit(agent("ws-1")); err != nil {
		t.Errorf("known ws-1 during a registry error: %v, want admitted", err)
	}
	if err := r.Admit(agent("ws-2")); err == nil || !strings.Contains(err.Error(), "db locked") {
		t.Errorf("unknown ws-2 during a registry error: err = %v, want the registry's error", err)
	}
}
