package app

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/wire"
)

// registeredAgents admits into the scheduler's gossip membership only agents
// whose member name is a registered server id: a holder of the gossip key
// cannot add a server by joining; an unknown name is refused, logged by the
// pool and listed only as an unregistered candidate (the admin's
// "discovered" agents, which an operator may register).
//
// Memberlist asks on every alive message with its node lock held, so Admit
// only reads a set of ids; Run re-reads the registry into it every
// reloadEvery (a server just added through the admin API is admitted on
// its next alive message after that; a deleted one refused). A registry
// that cannot be read keeps the previous set.
type registeredAgents struct {
	list        func(context.Context) ([]registry.ServerAddr, error)
	reloadEvery time.Duration
	ids         atomic.Pointer[map[string]bool]
}

// newRegisteredAgents reads the registered ids once: the set is whole
// before the pool asks.
func newRegisteredAgents(ctx context.Context, list func(context.Context) ([]registry.ServerAddr, error)) (*registeredAgents, error) {
	r := &registeredAgents{list: list, reloadEvery: 2 * time.Second}
	if err := r.reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *registeredAgents) reload(ctx context.Context) error {
	servers, err := r.list(ctx)
	if err != nil {
		return fmt.Errorf("read the registered servers: %w", err)
	}
	ids := make(map[string]bool, len(servers))
	for _, s := range servers {
		ids[s.ID] = true
	}
	r.ids.Store(&ids)
	return nil
}

// Run keeps the set in step with the registry until ctx ends.
func (r *registeredAgents) Run(ctx context.Context, log hclog.Logger) error {
	tick := time.NewTicker(r.reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := r.reload(ctx); err != nil && ctx.Err() == nil {
				log.Warn("gossip admission keeps the previous servers", "error", err)
			}
		}
	}
}

// Admit is gossip.Config.Admit.
func (r *registeredAgents) Admit(m gossip.Member) error {
	if m.Meta.Role != wire.NodeRoleAgent {
		return nil // schedulers are not servers; checkMember already checked their shape
	}
	if !(*r.ids.Load())[m.Name] {
		return fmt.Errorf("%w: %q (register it, e.g. from the admin panel's discovered agents)", gossip.ErrUnregistered, m.Name)
	}
	return nil
}
