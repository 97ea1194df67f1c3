package orchestrator_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
)

// homeFile is the path of a file in a workspace's home on a rig agent: the
// real directory the agent's home transfer routes work in (the in-memory
// Docker makes no directories, so tests write the files themselves).
func (r *rig) homeFile(server, id, name string) string {
	return filepath.Join(r.agents[server].DataDir, orchestrator.HomeDir(id), name)
}

func (r *rig) writeHome(server, id string, files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := r.homeFile(server, id, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) readHome(server, id string, names ...string) map[string]string {
	r.t.Helper()
	out := map[string]string{}
	for _, name := range names {
		b, err := os.ReadFile(r.homeFile(server, id, name))
		if err != nil {
			out[name] = "<" + err.Error() + ">"
			continue
		}
		out[name] = string(b)
	}
	return out
}

func (r *rig) home(id string) registry.Home {
	r.t.Helper()
	h, err := r.db.GetHome(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func TestRecreateGoesBackToItsHome(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	first, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	home := first.ServerID
	// Spread would alternate between the two empty servers; the home wins.
	for i := range 10 {
		if err := r.orch.Delete(ctx, first); err != nil {
			t.Fatal(err)
		}
		ws, err := r.orch.Create(ctx, createReq("w1", "alice"))
		if err != nil {
			t.Fatalf("re-create %d: %v", i, err)
		}
		if ws.ServerID != home {
			t.Fatalf("re-create %d landed on %s; its home is on %s", i, ws.ServerID, home)
		}
		first = ws
	}
	if got := r.home("w1"); got.ServerID != home || got.UserID != "alice" {
		t.Errorf("home = %+v; want alice's on %s", got, home)
	}
}

func TestDeletedIDStaysItsOwners(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("victim", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	r.writeHome(ws.ServerID, "victim", map[string]string{"secret.txt": "alice's"})
	if err := r.orch.Delete(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := r.orch.Create(ctx, createReq("victim", "mallory")); !errors.Is(err, orchestrator.ErrOwnedByOther) {
		t.Fatalf("another owner's create of a deleted id: %v; want ErrOwnedByOther", err)
	}
	if err := r.orch.MarkHomeForDeletion(ctx, "victim", "mallory"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Fatalf("another owner's mark-for-deletion of the home: %v; want ErrNotFound", err)
	}
	// The owner lets it go; the cleanup removes the data, then the id is free.
	if err := r.orch.MarkHomeForDeletion(ctx, "victim", "alice"); err != nil {
		t.Fatal(err)
	}
	if n := r.orch.CleanupOnce(ctx); n != 1 {
		t.Fatalf("cleanup purged %d; want the home", n)
	}
	removed := r.agents[ws.ServerID].RemovedData()
	if len(removed) == 0 || removed[len(removed)-1] != orchestrator.DataDir("victim") {
		t.Errorf("data removed on %s: %v; want %s last", ws.ServerID, removed, orchestrator.DataDir("victim"))
	}
	if _, err := r.db.GetHome(ctx, "victim"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("home after purge: %v; want it gone", err)
	}
	got, err := r.orch.Create(ctx, createReq("victim", "mallory"))
	if err != nil {
		t.Fatalf("create of a freed id: %v", err)
	}
	if got.UserID != "mallory" {
		t.Errorf("owner %s; want mallory", got.UserID)
	}
}

func TestDrainMovesHomeWithItsFiles(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	from, to := ws.ServerID, other(ws.ServerID)
	files := map[string]string{"notes.md": "# hello\n", "src/main.go": "package main\n", ".bashrc": "export X=1\n"}
	r.writeHome(from, "w1", files)
	if err := os.Symlink("src/main.go", r.homeFile(from, "w1", "link")); err != nil {
		t.Fatal(err)
	}
	r.setState(from, fleet.StateDraining)
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	moved, err := r.orch.Get(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if moved.ServerID != to || moved.Status != fleet.StatusRunning {
		t.Fatalf("after restart: %s on %s; want running on %s", moved.Status, moved.ServerID, to)
	}
	if reset, ok := moved.Metadata["home_reset"]; ok {
		t.Errorf("metadata.home_reset = %v; the home moved with its files", reset)
	}
	if diff := cmp.Diff(files, r.readHome(to, "w1", "notes.md", "src/main.go", ".bashrc")); diff != "" {
		t.Errorf("files on %s (-want +got):\n%s", to, diff)
	}
	if target, err := os.Readlink(r.homeFile(to, "w1", "link")); err != nil || target != "src/main.go" {
		t.Errorf("link on %s: %q, %v", to, target, err)
	}
	if h := r.home("w1"); h.ServerID != to || h.MovingTo != "" {
		t.Errorf("home = %+v; want on %s, no move under way", h, to)
	}
	if removed := r.agents[from].RemovedData(); !slices.Contains(removed, orchestrator.DataDir("w1")) {
		t.Errorf("old copy on %s not removed (removed: %v)", from, removed)
	}
	if left, _ := r.db.ListLeftovers(ctx); len(left) != 0 {
		t.Errorf("leftovers %v; the old copy was removed", left)
	}
	evs := r.events("w1")
	for _, want := range []string{orchestrator.EventHomeMoveStarted + "@" + to, orchestrator.EventHomeMoveFinished + "@" + to} {
		if !slices.Contains(evs, want) {
			t.Errorf("events %v lack %s", evs, want)
		}
	}
}

func TestMoveFromUnreachableHomeIsRefusedAndKeepsData(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	from, to := ws.ServerID, other(ws.ServerID)
	r.writeHome(from, "w1", map[string]string{"work.txt": "precious"})
	r.setState(from, fleet.StateDraining)
	r.agents[from].SetDown(true) // health still says healthy: the export itself fails

	err = r.orch.Restart(ctx, ws)
	var herr *orchestrator.HomeUnavailableError
	if !errors.As(err, &herr) || herr.ServerID != from {
		t.Fatalf("restart with the home's server down: %v; want HomeUnavailableError for %s", err, from)
	}
	if _, err := os.Stat(r.homeFile(to, "w1", "")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s has a home for w1 after the refused move (%v)", to, err)
	}
	if h := r.home("w1"); h.ServerID != from || h.MovingTo != "" {
		t.Errorf("home = %+v; want still on %s", h, from)
	}

	// Known down: refused before anything is reserved.
	r.health.set(from, fleet.HealthUnreachable)
	if err := r.orch.Restart(ctx, ws); !errors.As(err, &herr) {
		t.Fatalf("restart with the home's server unreachable: %v; want HomeUnavailableError", err)
	}

	// Back: the move completes with the data.
	r.health.set(from, fleet.HealthHealthy)
	r.agents[from].SetDown(false)
	if err := r.orch.Restart(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if got := r.readHome(to, "w1", "work.txt"); got["work.txt"] != "precious" {
		t.Errorf("work.txt on %s = %q", to, got["work.txt"])
	}
}

func TestHomeOfRemovedServerStartsEmpty(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 4, "ws-1", "ws-2")
	ws, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	gone := ws.ServerID
	if err := r.orch.Delete(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := r.db.DeleteServer(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if h := r.home("w1"); !h.Lost() {
		t.Fatalf("home %+v; want lost with its server", h)
	}
	again, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Metadata["home_reset"] != true {
		t.Errorf("metadata %v; want home_reset true", again.Metadata)
	}
	if !slices.Contains(r.events("w1"), orchestrator.EventHomeReset+"@"+again.ServerID) {
		t.Errorf("events %v lack %s", r.events("w1"), orchestrator.EventHomeReset)
	}
}

func TestReservedEnvironment(t *testing.T) {
	r := newRig(t, 4, "ws-1")
	tests := []struct {
		name string
		tier string
		env  map[string]string
		want *orchestrator.EnvError
	}{
		{"reserved", "starter", map[string]string{"USER_ID": "root"}, &orchestrator.EnvError{Key: "USER_ID"}},
		{"git", "starter", map[string]string{"GIT_CREDENTIALS": "x"}, &orchestrator.EnvError{Key: "GIT_CREDENTIALS"}},
		{"gpu variable off a gpu tier", "starter", map[string]string{"NVIDIA_VISIBLE_DEVICES": "all"}, &orchestrator.EnvError{Key: "NVIDIA_VISIBLE_DEVICES", GPU: true}},
		{"ordinary", "starter", map[string]string{"GITHUB_TOKEN": "t", "EDITOR": "vim"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := createReq("env-"+tt.name[:3], "alice")
			req.Config.Tier, req.Config.Environment = tt.tier, tt.env
			_, err := r.orch.Create(context.Background(), req)
			var got *orchestrator.EnvError
			errors.As(err, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error %v (-want +got):\n%s", err, diff)
			}
		})
	}
}

// A re-created id whose home's server has no room left runs elsewhere, and
// its home moves there with it.
func TestRecreateOnAFullHomeServerMovesTheHome(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1, "ws-1", "ws-2") // room for one starter each
	ws, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	home, elsewhere := ws.ServerID, other(ws.ServerID)
	r.writeHome(home, "w1", map[string]string{"keep.txt": "kept"})
	if err := r.orch.Delete(ctx, ws); err != nil {
		t.Fatal(err)
	}
	// Someone else takes the room on the home's server.
	r.setState(elsewhere, fleet.StateCordoned)
	if got, err := r.orch.Create(ctx, createReq("w2", "bob")); err != nil || got.ServerID != home {
		t.Fatalf("filler: %v on %s; want it on %s", err, got.ServerID, home)
	}
	r.setState(elsewhere, fleet.StateActive)

	again, err := r.orch.Create(ctx, createReq("w1", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if again.ServerID != elsewhere || again.Metadata["home_reset"] != nil {
		t.Fatalf("re-created on %s with metadata %v; want on %s with its home", again.ServerID, again.Metadata, elsewhere)
	}
	if got := r.readHome(elsewhere, "w1", "keep.txt"); got["keep.txt"] != "kept" {
		t.Errorf("keep.txt on %s = %q", elsewhere, got["keep.txt"])
	}
}
