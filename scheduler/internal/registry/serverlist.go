package registry

import (
	"context"
	"fmt"

	"berth/scheduler/internal/fleet"
)

// ServerAddr is what says where a server's agent is: the part of its row
// the loops that visit every server every few seconds (health probes, the
// event watcher, gossip admission) need, read without decoding whole rows
// (labels, times, usage): ListServers decodes ~70 ms of rows at 10,000
// servers, ListServerAddrs a few.
type ServerAddr struct {
	ID        string
	Hostname  string
	IPAddress string
	AgentPort int
}

// Server is a Server holding only these fields, for helpers that take a
// Server (e.g. the orchestrator's agent address).
func (a ServerAddr) Server() Server {
	return Server{ID: a.ID, Hostname: a.Hostname, IPAddress: a.IPAddress, AgentPort: a.AgentPort}
}

// ListServerAddrs lists the id and agent address of every server, in
// registration order (as ListServers).
func (db *DB) ListServerAddrs(ctx context.Context) ([]ServerAddr, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT id, hostname, ip_address, agent_port FROM servers ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("list server addresses: %w", err)
	}
	defer rows.Close()
	out := []ServerAddr{}
	for rows.Next() {
		var a ServerAddr
		if err := rows.Scan(&a.ID, &a.Hostname, &a.IPAddress, &a.AgentPort); err != nil {
			return nil, fmt.Errorf("list server addresses: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list server addresses: %w", err)
	}
	return out, nil
}

// ServerHealths is every server's stored health by id (/metrics reads it
// at every scrape), without decoding whole rows.
func (db *DB) ServerHealths(ctx context.Context) (map[string]fleet.Health, error) {
	rows, err := db.read.QueryContext(ctx, "SELECT id, health FROM servers")
	if err != nil {
		return nil, fmt.Errorf("list server health: %w", err)
	}
	defer rows.Close()
	out := map[string]fleet.Health{}
	for rows.Next() {
		var id string
		var h fleet.Health
		if err := rows.Scan(&id, &h); err != nil {
			return nil, fmt.Errorf("list server health: %w", err)
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list server health: %w", err)
	}
	return out, nil
}
