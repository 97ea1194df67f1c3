package app

import (
	"context"
)

// stateView is what the metrics read at scrape time.
type stateView struct{ a *App }

func (s stateView) WorkspacesByStatus(ctx context.Context) (map[string]int, error) {
	counts, err := s.a.db.CountByStatus(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(counts))
	for status, n := range counts {
		out[string(status)] = n
	}
	return out, nil
}

func (s stateView) ServerHealth(ctx context.Context) (map[string]string, error) {
	stored, err := s.a.db.ServerHealths(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(stored))
	for id, h := range stored {
		if live, ok := s.a.tracker.Health(id); ok {
			h = live
		}
		out[id] = string(h)
	}
	return out, nil
}

func (s stateView) GossipMembers() map[string]int {
	out := map[string]int{}
	if s.a.pool == nil {
		return out
	}
	return s.a.pool.CountByState()
}
