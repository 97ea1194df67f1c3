package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Homes on the compose cluster: a workspace's home directory follows it.
// These tests use the compose scheduler, whose agents reach each other by
// their compose names (a home moves agent → agent, never through the
// scheduler).

// purgeOnCleanup lets the home go when the test ends: the workspace is
// marked for deletion (or, deleted already, its home is), so the cleanup
// loop removes the data and the registry forgets the id.
func (k caller) purgeOnCleanup(t *testing.T, id string) {
	t.Helper()
	t.Cleanup(func() {
		r, err := k.tryDo(http.MethodPost, "/workspaces/"+id+"/mark-for-deletion", nil)
		if err == nil && r.status != http.StatusAccepted && r.status != http.StatusNotFound {
			t.Errorf("cleanup: mark-for-deletion %s: %s", id, r)
		}
	})
}

// writeFiles writes a small file and a random one of mib MiB into the
// home and returns the random file's checksum.
func writeFiles(t *testing.T, k caller, id string, mib int) string {
	t.Helper()
	res := k.exec(t, id, map[string]any{"timeout": 120, "command": fmt.Sprintf(
		`set -e; echo "notes of %s" > notes.txt; mkdir -p src/deep; echo 'package main' > src/deep/main.go; `+
			`ln -sf src/deep/main.go link.go; head -c %dM /dev/urandom > blob.bin; sha256sum blob.bin | cut -d' ' -f1`, id, mib)})
	if res.ExitCode != 0 {
		t.Fatalf("write files in %s: %+v", id, res)
	}
	return strings.TrimSpace(res.Stdout)
}

// checkFiles wants the files writeFiles wrote, byte for byte.
func checkFiles(t *testing.T, k caller, id, sum string) {
	t.Helper()
	res := k.exec(t, id, map[string]any{"timeout": 120, "command": `cat notes.txt; readlink link.go; cat src/deep/main.go; sha256sum blob.bin | cut -d' ' -f1; stat -c %U blob.bin`})
	want := fmt.Sprintf("notes of %s\nsrc/deep/main.go\npackage main\n%s\ndev\n", id, sum)
	if res.ExitCode != 0 || res.Stdout != want {
		t.Errorf("files in %s: %+v; want stdout %q", id, res, want)
	}
}

// workspaceEvent is one event of GET /admin/events.
type workspaceEvent struct {
	Kind    string          `json:"kind"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// workspaceEvents lists a workspace's events, newest first.
func workspaceEvents(t *testing.T, id string) []workspaceEvent {
	t.Helper()
	code, body := panelAPI(t, http.MethodGet, "/admin/events?limit=500&workspace_id="+id, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /admin/events: %d %s", code, body)
	}
	var out struct {
		Events []workspaceEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Events
}

// adminEvents lists the kinds of a workspace's events, newest first.
func adminEvents(t *testing.T, id string) []string {
	t.Helper()
	var kinds []string
	for _, e := range workspaceEvents(t, id) {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// setState drains or re-activates a host through the admin API, and puts
// it back to active when the test ends.
func setState(t *testing.T, server, state string) {
	t.Helper()
	if code, body := panelAPI(t, http.MethodPatch, "/admin/servers/"+server, map[string]any{"state": state}); code != http.StatusOK {
		t.Fatalf("PATCH %s state %s: %d %s", server, state, code, body)
	}
	if state != "active" {
		t.Cleanup(func() { panelAPI(t, http.MethodPatch, "/admin/servers/"+server, map[string]any{"state": "active"}) })
	}
}

// Delete then re-create the same id, 20 times: it goes back to the host
// holding its home, and the file written before is always there.
func TestHomeFollowsRecreate(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("home-user"))
	session, id := uniqueID("s"), uniqueID("home")
	k.purgeOnCleanup(t, id)
	ws := k.mustCreate(t, session, id, nil)
	sum := writeFiles(t, k, id, 1)
	for i := range 20 {
		if r := k.do(t, http.MethodDelete, "/workspaces/"+id, nil); r.status != http.StatusNoContent {
			t.Fatalf("delete %d: %s", i, r)
		}
		again := k.mustCreate(t, session, id, nil)
		if again.ServerID != ws.ServerID {
			t.Errorf("re-create %d on %s; its home is on %s", i, again.ServerID, ws.ServerID)
		}
		if again.Metadata["home_reset"] != nil {
			t.Errorf("re-create %d: metadata %v", i, again.Metadata)
		}
		checkFiles(t, k, id, sum)
	}
}

// Another owner's create of a deleted id is refused and never sees the
// home; once the owner marks it for deletion, the cleanup removes the data
// and the id is free.
func TestDeletedIDStaysItsOwners(t *testing.T) {
	needCluster(t)
	api := composeAPI()
	alice, mallory := api.as(uniqueID("alice")), api.as(uniqueID("mallory"))
	session, id := uniqueID("s"), uniqueID("victim")
	alice.purgeOnCleanup(t, id)
	mallory.purgeOnCleanup(t, id)
	ws := alice.mustCreate(t, session, id, nil)
	writeFiles(t, alice, id, 1)
	if r := alice.do(t, http.MethodDelete, "/workspaces/"+id, nil); r.status != http.StatusNoContent {
		t.Fatal(r)
	}
	if r := mallory.create(t, session, id, starter()); r.status != http.StatusConflict || r.detail() != "Workspace ID already in use" {
		t.Fatalf("another owner's create of a deleted id: %s; want 409", r)
	}
	if r := mallory.do(t, http.MethodPost, "/workspaces/"+id+"/mark-for-deletion", nil); r.status != http.StatusNotFound {
		t.Fatalf("another owner's mark-for-deletion: %s; want 404", r)
	}
	if r := alice.do(t, http.MethodPost, "/workspaces/"+id+"/mark-for-deletion", nil); r.status != http.StatusAccepted {
		t.Fatalf("the owner's mark-for-deletion of the home: %s; want 202", r)
	}
	waitFor(t, 60*time.Second, "the cleanup removes the home", func() (bool, string) {
		return !dataDirExists(t, ws.ServerID, id), "home still on " + ws.ServerID
	})
	waitFor(t, 30*time.Second, "the id is free", func() (bool, string) {
		r := mallory.create(t, session, id, starter())
		return r.status == http.StatusCreated, r.String()
	})
	if res := mallory.exec(t, id, map[string]any{"command": "ls -A"}); strings.Contains(res.Stdout, "notes.txt") {
		t.Errorf("the new owner sees the old home: %q", res.Stdout)
	}
}

// Drain a host holding three workspaces with files, restart them: each
// moves to the other host with its files intact, and the old copies go.
func TestDrainMovesHomes(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("drain-user"))
	session := uniqueID("s")
	from, to := hosts[0].id, hosts[1].id
	var ids []string
	sums := map[string]string{}
	for len(ids) < 3 {
		ws := placeOn(t, k, session, from)
		k.purgeOnCleanup(t, ws.ID)
		ids = append(ids, ws.ID)
		sums[ws.ID] = writeFiles(t, k, ws.ID, 8)
	}
	setState(t, from, "draining")
	for _, id := range ids {
		if r := k.do(t, http.MethodPost, "/workspaces/"+id+"/restart", nil); r.status != http.StatusNoContent {
			t.Fatalf("restart %s on the draining %s: %s", id, from, r)
		}
		var ws info
		k.get(t, id).into(t, &ws)
		if ws.ServerID != to || ws.Status != "running" || ws.Metadata["home_reset"] != nil {
			t.Errorf("%s after restart: %s on %s, metadata %v; want running on %s, home kept", id, ws.Status, ws.ServerID, ws.Metadata, to)
		}
		checkFiles(t, k, id, sums[id])
		if dataDirExists(t, from, id) {
			t.Errorf("%s: the old copy is still on %s", id, from)
		}
		if evs := adminEvents(t, id); !slices.Contains(evs, "home.move.finished") {
			t.Errorf("%s events %v lack home.move.finished", id, evs)
		}
	}
}

// Kill the host a home is being copied from, in the middle of the copy:
// the restart fails without leaving a half copy on the target, the old
// copy is intact, and once the host is back the restart moves the home
// with every byte.
func TestFaultKillHomeSourceDuringMove(t *testing.T) {
	needFaults(t)
	k := composeAPI().as(uniqueID("fault-home"))
	from, to := "ws-local-2", "ws-local-1"
	ws := placeOn(t, k, uniqueID("s"), from)
	k.purgeOnCleanup(t, ws.ID)
	sum := writeFiles(t, k, ws.ID, 1024) // a copy of 1 GiB takes seconds: time to kill the source
	restoreHost(t, from)
	host := hostContainer(t, from)
	setState(t, from, "draining")

	done := make(chan response, 1)
	go func() {
		r, err := k.tryDo(http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil)
		if err != nil {
			r = response{status: -1, body: []byte(err.Error())}
		}
		done <- r
	}()
	waitFor(t, 60*time.Second, "the home move to start", func() (bool, string) {
		return slices.Contains(adminEvents(t, ws.ID), "home.move.started"), "not yet"
	})
	docker(t, "kill", host)
	r := <-done
	if r.status != http.StatusNotFound || !strings.Contains(r.detail(), "home directory is on server '"+from+"'") {
		t.Fatalf("restart whose source died mid-copy: %s; want 404 naming the home's server", r)
	}
	if slices.Contains(adminEvents(t, ws.ID), "home.move.finished") {
		t.Fatal("the move finished before the kill: make the home bigger")
	}
	for _, dir := range []string{"home", "home.incoming"} {
		err := exec.Command("docker", "exec", hostContainer(t, to), "test", "-e", dataRoot+"/"+ws.ID+"/"+dir).Run()
		if err == nil {
			t.Errorf("%s holds %s of the failed move", to, dir)
		}
	}

	docker(t, "start", host)
	// The scheduler may not have seen the host go (it came back quickly):
	// retry the restart until the agent answers again.
	waitFor(t, 120*time.Second, "a restart once the source is back", func() (bool, string) {
		r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil)
		return r.status == http.StatusNoContent, r.String()
	})
	var moved info
	k.get(t, ws.ID).into(t, &moved)
	if moved.ServerID != to || moved.Metadata["home_reset"] != nil {
		t.Errorf("after the retried move: on %s, metadata %v; want on %s with its home", moved.ServerID, moved.Metadata, to)
	}
	checkFiles(t, k, ws.ID, sum)
	if dataDirExists(t, from, ws.ID) {
		t.Errorf("the old copy is still on %s after a verified move", from)
	}
}
