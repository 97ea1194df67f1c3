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
	servers, err := s.a.db.ListServers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, srv := range servers {
		h := string(srv.Health)
		if live, ok := s.a.tracker.Health(srv.ID); ok {
			h = string(live)
		}
		out[srv.ID] = h
	}
	return out, nil
}

func (s stateView) GossipMembers() map[string]int {
	out := map[string]int{}
	if s.a.pool == nil {
		return out
	}
	for _, m := range s.a.pool.Members() {
		out[m.State]++
	}
	return out
}
