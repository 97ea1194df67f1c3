package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"berth/scheduler/internal/podexapi"
	"berth/scheduler/internal/registry"
)

// parseSeed reads COMPUTE_WORKSPACE_SERVERS, a JSON list of the podex
// seed's WorkspaceServer records (podexapi.ServerRecord: the API's server
// list shape, docker_port taken as the agent port, plus berth's fields);
// an empty string is no servers.
func parseSeed(raw string) ([]registry.Server, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var in []podexapi.ServerRecord
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		return nil, fmt.Errorf("COMPUTE_WORKSPACE_SERVERS: %w", err)
	}
	out := make([]registry.Server, 0, len(in))
	for i, r := range in {
		s, err := r.Server()
		if err != nil {
			return nil, fmt.Errorf("COMPUTE_WORKSPACE_SERVERS[%d]: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func seedServers(ctx context.Context, db *registry.DB, raw string) (int, error) {
	servers, err := parseSeed(raw)
	if err != nil {
		return 0, err
	}
	for _, s := range servers {
		if _, err := db.UpsertServer(ctx, s); err != nil {
			return 0, fmt.Errorf("register server %s: %w", s.ID, err)
		}
	}
	return len(servers), nil
}
