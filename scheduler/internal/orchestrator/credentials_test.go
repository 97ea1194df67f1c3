package orchestrator_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// The git credentials of a create reach the container's environment as
// GIT_CREDENTIALS, from the registry's credentials (never the row or its
// settings), and so does the container a move makes on another server.
func TestGitCredentialsReachTheContainer(t *testing.T) {
	const secret = "https://ada:s3cret-t0ken@git.example.com"
	settings := registry.Settings{GitBranch: "main", GitName: "Ada", GitEmail: "ada@example.com"}
	tests := []struct {
		name  string
		creds string
		move  bool // the workspace's server drains and it is restarted
	}{
		{name: "create", creds: secret},
		{name: "after a move", creds: secret, move: true},
		{name: "none given", creds: "", move: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, 4, "ws-1", "ws-2")
			creates := map[string]func() []wire.CreateContainerRequest{}
			for id, a := range r.agents {
				creates[id] = captureCreates(t, a)
			}
			req := createReq("w1", "u1")
			req.Config.Settings, req.Config.GitCredentials = settings, tt.creds
			ws, err := r.orch.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.move {
				r.setState(ws.ServerID, fleet.StateDraining)
				if err := r.orch.Restart(ctx, ws); err != nil {
					t.Fatal(err)
				}
				moved, err := r.orch.Get(ctx, "w1")
				if err != nil || moved.ServerID != other(ws.ServerID) {
					t.Fatalf("after the restart: got %s, %v; want w1 moved to %s", moved.ServerID, err, other(ws.ServerID))
				}
				ws = moved
			}
			sent := creates[ws.ServerID]()
			if len(sent) != 1 {
				t.Fatalf("creates sent to %s: got %d, want 1", ws.ServerID, len(sent))
			}
			env := sent[0].Env
			want := map[string]string{"GIT_BRANCH": "main", "GIT_USER_NAME": "Ada", "GIT_USER_EMAIL": "ada@example.com"}
			if tt.creds != "" {
				want["GIT_CREDENTIALS"] = tt.creds
			}
			got := map[string]string{}
			for k, v := range env {
				if strings.HasPrefix(k, "GIT_") {
					got[k] = v
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("git environment of the container on %s (-want +got):\n%s", ws.ServerID, d)
			}

			stored, err := r.db.GetCredentials(ctx, "w1")
			if err != nil || stored != (registry.Credentials{Git: tt.creds}) {
				t.Errorf("stored credentials: got %+v, %v; want %q", stored, err, tt.creds)
			}
			rows, err := r.db.ListWorkspaces(ctx, registry.WorkspaceFilter{})
			if err != nil || len(rows) != 1 {
				t.Fatalf("rows: got %d, %v; want 1", len(rows), err)
			}
			if d := cmp.Diff(settings, rows[0].Settings); d != "" {
				t.Errorf("stored settings (-want +got):\n%s", d)
			}
			for _, w := range []registry.Workspace{ws, rows[0]} {
				raw, err := json.Marshal(w)
				if err != nil {
					t.Fatal(err)
				}
				if tt.creds != "" && strings.Contains(string(raw), "s3cret") {
					t.Errorf("the workspace row carries the credentials: %s", raw)
				}
			}
		})
	}
}
