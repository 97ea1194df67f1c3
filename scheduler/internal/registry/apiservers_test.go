package registry

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
)

// The podex API's server list is upserted: new servers registered, listed
// fields updated, operator fields kept; a server no longer listed is
// cordoned with its workspaces, and active again when listed again unless
// an operator changed its state meanwhile.
func TestSyncAPIServers(t *testing.T) {
	ctx := context.Background()
	db, _ := openTestDB(t)
	mustCreateServer(t, db, Server{ID: "admin-only", IPAddress: "10.0.0.9", AgentPort: 7443})
	api := func(id, ip string) Server {
		return Server{ID: id, Hostname: id + ".example", IPAddress: ip, AgentPort: 7443, Architecture: "amd64", Region: "eu"}
	}
	sync := func(listed ...Server) APISync {
		t.Helper()
		got, err := db.SyncAPIServers(ctx, listed, time.Now())
		if err != nil {
			t.Fatalf("SyncAPIServers: %v", err)
		}
		return got
	}
	state := func(id string) fleet.State {
		t.Helper()
		s, err := db.GetServer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.State
	}

	steps := []struct {
		name       string
		do         func() APISync
		want       APISync
		wantStates map[string]fleet.State
	}{
		{"first list registers", func() APISync { return sync(api("a", "10.0.0.1"), api("b", "10.0.0.2")) },
			APISync{Added: []string{"a", "b"}},
			map[string]fleet.State{"a": fleet.StateActive, "b": fleet.StateActive, "admin-only": fleet.StateActive}},
		{"the same list changes nothing", func() APISync { return sync(api("a", "10.0.0.1"), api("b", "10.0.0.2")) },
			APISync{}, nil},
		{"a new address is taken", func() APISync { return sync(api("a", "10.0.0.11"), api("b", "10.0.0.2")) },
			APISync{Updated: []string{"a"}}, nil},
		{"b no longer listed: cordoned; the admin's server untouched", func() APISync { return sync(api("a", "10.0.0.11")) },
			APISync{Cordoned: []string{"b"}},
			map[string]fleet.State{"b": fleet.StateCordoned, "admin-only": fleet.StateActive}},
		{"b listed again: active again", func() APISync { return sync(api("a", "10.0.0.11"), api("b", "10.0.0.2")) },
			APISync{Reactivated: []string{"b"}}, map[string]fleet.State{"b": fleet.StateActive}},
		{"an empty list cordons every listed server", func() APISync { return sync() },
			APISync{Cordoned: []string{"a", "b"}}, map[string]fleet.State{"a": fleet.StateCordoned, "b": fleet.StateCordoned}},
		{"an operator activates a; the next list does not touch it", func() APISync {
			active := fleet.StateActive
			if _, err := db.UpdateServer(ctx, "a", ServerPatch{State: &active}); err != nil {
				t.Fatal(err)
			}
			return sync()
		}, APISync{}, map[string]fleet.State{"a": fleet.StateActive}},
		{"relisted: a stays as the operator left it, b comes back", func() APISync {
			draining := fleet.StateDraining
			if _, err := db.UpdateServer(ctx, "a", ServerPatch{State: &draining}); err != nil {
				t.Fatal(err)
			}
			return sync(api("a", "10.0.0.11"), api("b", "10.0.0.2"))
		}, APISync{Reactivated: []string{"b"}}, map[string]fleet.State{"a": fleet.StateDraining, "b": fleet.StateActive}},
	}
	for _, st := range steps {
		got := st.do()
		if diff := cmp.Diff(st.want, got, cmpOpts...); diff != "" {
			t.Errorf("%s: sync (-want +got):\n%s", st.name, diff)
		}
		for id, want := range st.wantStates {
			if got := state(id); got != want {
				t.Errorf("%s: server %s is %s, want %s", st.name, id, got, want)
			}
		}
	}

	// Operator fields survive a list that names the server.
	labels := map[string]string{"disk": "nvme"}
	cpu := 32.0
	if _, err := db.UpdateServer(ctx, "b", ServerPatch{Labels: &labels, TotalCPU: &cpu}); err != nil {
		t.Fatal(err)
	}
	sync(api("a", "10.0.0.11"), api("b", "10.0.0.22"))
	b, _ := db.GetServer(ctx, "b")
	if b.IPAddress != "10.0.0.22" || b.TotalCPU != 32 || b.Labels["disk"] != "nvme" || b.Name != "b" {
		t.Errorf("server b after a list: %+v; want the new address with the operator's labels and capacity", b)
	}
	listed, err := db.ListAPIServers(ctx)
	if err != nil || len(listed) != 2 {
		t.Fatalf("ListAPIServers = %v, %v; want a and b", listed, err)
	}
}

// A server with workspaces that the list drops is cordoned, never deleted,
// and its workspaces are untouched.
func TestSyncAPIServersKeepsWorkspaces(t *testing.T) {
	ctx := context.Background()
	db, _ := openTestDB(t)
	if _, err := db.SyncAPIServers(ctx, []Server{{ID: "a"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	mustReserve(t, db, Workspace{ID: "w", UserID: "u", ServerID: "a"}, Limits{})
	got, err := db.SyncAPIServers(ctx, nil, time.Now())
	if err != nil || len(got.Cordoned) != 1 {
		t.Fatalf("SyncAPIServers(none) = %+v, %v; want a cordoned", got, err)
	}
	if w, err := db.GetWorkspace(ctx, "w"); err != nil || w.ServerID != "a" {
		t.Errorf("workspace after the cordon: %+v, %v", w, err)
	}
	evs, _ := db.ListEvents(ctx, EventFilter{ServerID: "a"})
	if len(evs) == 0 || evs[0].Kind != EventServerUnlisted {
		t.Errorf("latest event of a: %+v, want %s", evs, EventServerUnlisted)
	}
}
