package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// registeredAgents admits into the scheduler's gossip membership only agents
// whose member name is a registered server id: a holder of the gossip key
// cannot add a server by joining; an unknown name is refused, logged by the
// pool and listed only as an unregistered candidate (the admin's
// "discovered" agents, which an operator may register). Memberlist asks on every alive message with its node lock held, so
// the ids are cached; a miss reloads them at most every reloadEvery (a server
// just added through the admin API is admitted on its next alive message
// after that), and a hit older than maxAge reloads them too (a deleted
// server is refused from then on).
type registeredAgents struct {
	list        func(context.Context) ([]registry.Server, error)
	reloadEvery time.Duration
	maxAge      time.Duration

	mu     sync.Mutex
	ids    map[string]bool
	loaded time.Time
}

func newRegisteredAgents(list func(context.Context) ([]registry.Server, error)) *registeredAgents {
	return &registeredAgents{list: list, reloadEvery: 2 * time.Second, maxAge: 30 * time.Second}
}

// Admit is gossip.Config.Admit.
func (r *registeredAgents) Admit(m gossip.Member) error {
	if m.Meta.Role != wire.NodeRoleAgent {
		return nil // schedulers are not servers; checkMember already checked their shape
	}
	ok, err := r.has(m.Name)
	if err != nil {
		return fmt.Errorf("cannot read the registered servers: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: %q (register it, e.g. from the admin panel's discovered agents)", gossip.ErrUnregistered, m.Name)
	}
	return nil
}

func (r *registeredAgents) has(name string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	age := time.Since(r.loaded)
	known := r.ids[name]
	if (known && age < r.maxAge) || (!known && age < r.reloadEvery) {
		return known, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	servers, err := r.list(ctx)
	if err != nil {
		r.loaded = time.Now() // retried after reloadEvery, not on every alive message
		if known {
			return true, nil // a registry hiccup does not refuse a known server
		}
		return false, err
	}
	r.ids, r.loaded = make(map[string]bool, len(servers)), time.Now()
	for _, s := range servers {
		r.ids[s.ID] = true
	}
	return r.ids[name], nil
}
