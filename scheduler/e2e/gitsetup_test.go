package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/gitsetup"
	"berth/scheduler/internal/gitsetup/gittest"
)

// The git setup on real hosts, against a git server of the test's own that
// wants credentials (git http-backend behind basic auth, reached by the
// workspace containers through their host's NAT and the compose network's
// gateway): one workspace gets both its repos cloned on the branch, the
// identity set and the credentials in a store file of mode 600; one with a
// wrong password and one with a missing branch and an unreachable repo get
// the reasons in their metadata and events and run on; a restart clones a
// removed repo again. Then nothing holds the credential: the containers'
// docker inspect, their process lists (also while a clone is in flight),
// the scheduler's log, its SQLite files and every API answer of the test.
func TestGitSetup(t *testing.T) {
	needCluster(t)
	gittest.Git(t)
	token := make([]byte, 12)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	secret := "gitpw-" + hex.EncodeToString(token) // what every search looks for
	const user = "ada-e2e"
	pass := secret + "+/@:%" // characters the store file must encode

	gateway := composeGateway(t)
	srv := gittest.Start(t, "0.0.0.0:0", user, pass)
	srv.AddRepo(t, "app", "main", "feature-x")
	srv.AddRepo(t, "lib", "main", "feature-x")
	base := fmt.Sprintf("http://%s:%d", gateway, srv.Port)
	dataDir := t.TempDir()
	roomy := seed{CPU: 32, MemoryMB: 65536, DiskGB: 1000, Region: "local"}
	s := startScheduler(t, "spread", map[string]seed{hosts[0].id: roomy, hosts[1].id: roomy},
		"BERTH_DATA_DIR="+dataDir, "BERTH_ADMIN_TOKEN="+testAdminToken, "BERTH_GIT_SETUP_TIMEOUT=2m")
	k := s.api.as(uniqueID("git-user"))
	session := uniqueID("s")
	var answers []string // every API answer of the test
	do := func(method, path string, body any) response {
		t.Helper()
		r := k.do(t, method, path, body)
		answers = append(answers, string(r.body))
		return r
	}
	create := func(prefix string, config map[string]any) info {
		t.Helper()
		id := uniqueID(prefix)
		k.deleteOnCleanup(t, id)
		r := do(http.MethodPost, "/workspaces", createBody(session, id, config))
		if r.status != http.StatusCreated {
			t.Fatalf("create %s: got %s, want 201", id, r)
		}
		var ws info
		r.into(t, &ws)
		if ws.Status != "running" {
			t.Fatalf("create %s: got %s, want running", id, r.body)
		}
		if st, ok := gitsetup.StatusOf(ws.Metadata); !ok || st.Run != 1 {
			t.Errorf("create %s: metadata %v, want git_setup run 1", id, ws.Metadata)
		}
		return ws
	}
	config := func(repos []string, branch, creds string) map[string]any {
		return map[string]any{"tier": "starter", "repos": repos, "git_branch": branch, "git_name": "Ada Lovelace",
			"git_email": "ada@example.com", "git_credentials": creds}
	}
	setup := func(id string, run int) gitsetup.Status {
		t.Helper()
		var st gitsetup.Status
		waitFor(t, 2*time.Minute, fmt.Sprintf("git setup %d of %s finished", run, id), func() (bool, string) {
			var ws info
			do(http.MethodGet, "/workspaces/"+id, nil).into(t, &ws)
			st, _ = gitsetup.StatusOf(ws.Metadata)
			return st.Run == run && (st.State == gitsetup.StateDone || st.State == gitsetup.StateFailed),
				fmt.Sprintf("%s: %+v", ws.Status, ws.Metadata[gitsetup.MetadataKey])
		})
		return st
	}
	sh := func(id, command string) string {
		t.Helper()
		r := do(http.MethodPost, "/workspaces/"+id+"/exec", map[string]any{"command": command})
		var res execResult
		r.into(t, &res)
		if r.status != http.StatusOK || res.ExitCode != 0 {
			t.Fatalf("exec %q in %s: %s", command, id, r)
		}
		return strings.TrimSpace(res.Stdout)
	}

	// The good one. Its clone of lib.git is held at the server while the
	// process list is searched: the credentials are in use then.
	holding := srv.Hold("/lib.git/")
	good := create("git-good", config([]string{base + "/app.git", base + "/lib.git"}, "feature-x", user+":"+pass))
	select {
	case <-holding:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the clone of lib.git never reached the server; metadata: %v", good.Metadata)
	}
	host := good.ServerID
	ps := innerDocker(t, host, "exec", "-u", "root", "workspace-"+good.ID, "ps", "-eww", "-o", "user,pid,args")
	if !strings.Contains(ps, "git-remote-http") {
		t.Errorf("no clone in flight in the process list:\n%s", ps)
	}
	procs := innerDocker(t, host, "exec", "-u", "root", "workspace-"+good.ID, "sh", "-c",
		"for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline; echo; tr '\\0' '\\n' <$p/environ; done 2>/dev/null; true")
	for what, text := range map[string]string{"ps during the clone": ps, "/proc cmdline and environ during the clone": procs} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds the credential", what)
		}
	}
	srv.Release()

	wrong := create("git-wrong", config([]string{base + "/app.git"}, "", user+":not-the-password"))
	missing := create("git-missing", config([]string{base + "/app.git", fmt.Sprintf("http://%s:1/gone.git", gateway)},
		"no-such-branch", user+":"+pass))

	st := setup(good.ID, 1)
	if st.State != gitsetup.StateDone || st.Credentials != gitsetup.CredentialsStored {
		t.Errorf("good: got %+v, want done with the credentials stored", st)
	}
	for _, repo := range []string{"app", "lib"} {
		if got := sh(good.ID, "git -C ~/"+repo+" rev-parse --abbrev-ref HEAD; cat ~/"+repo+"/README; git -C ~/"+repo+" remote get-url origin"); got != "feature-x\n"+repo+" on feature-x\n"+base+"/"+repo+".git" {
			t.Errorf("%s: got %q, want it on feature-x, origin without credentials", repo, got)
		}
	}
	if got := sh(good.ID, "git config --global user.name; git config --global user.email"); got != "Ada Lovelace\nada@example.com" {
		t.Errorf("identity: got %q", got)
	}
	if got := sh(good.ID, "stat -c '%a %U %G' "+gitsetup.StorePath+" "+filepath.Dir(gitsetup.StorePath)); got != "600 dev dev\n700 dev dev" {
		t.Errorf("store file and its directory: got %q, want 600 and 700, owned by dev", got)
	}
	sh(good.ID, "git -C ~/app fetch --quiet origin") // later git work finds the credentials

	st = setup(wrong.ID, 1)
	if st.State != gitsetup.StateFailed || st.Repos[0].Reason != gitsetup.ReasonBadCredentials {
		t.Errorf("wrong password: got %+v, want app failed with bad_credentials", st)
	}
	st = setup(missing.ID, 1)
	if got := []gitsetup.Reason{st.Repos[0].Reason, st.Repos[1].Reason}; st.State != gitsetup.StateFailed ||
		got[0] != gitsetup.ReasonBranchNotFound || got[1] != gitsetup.ReasonUnreachable {
		t.Errorf("missing branch, unreachable: got %+v, want branch_not_found and unreachable", st)
	}
	for _, ws := range []info{wrong, missing} {
		if got := k.status(t, ws.ID); got != "running" {
			t.Errorf("%s after a failed clone: %s, want running", ws.ID, got)
		}
		if got := sh(ws.ID, "ls -A ~ | grep -v '^\\.' || true"); got != "" {
			t.Errorf("%s: a failed clone left %q in the home", ws.ID, got)
		}
		reasons := map[string]bool{}
		for _, e := range eventsOf(t, s, ws.ID) {
			if e.Kind == gitsetup.EventFailed {
				var d struct{ Reason string }
				_ = json.Unmarshal(e.Data, &d)
				reasons[d.Reason] = true
			}
		}
		want := map[string][]string{wrong.ID: {"bad_credentials"}, missing.ID: {"branch_not_found", "unreachable"}}[ws.ID]
		for _, r := range want {
			if !reasons[r] {
				t.Errorf("%s: no git.repo.failed event with reason %s; got %v", ws.ID, r, reasons)
			}
		}
	}

	// A restart clones what is missing and leaves the rest.
	sh(good.ID, "rm -rf ~/lib")
	if r := do(http.MethodPost, "/workspaces/"+good.ID+"/restart", nil); r.status != http.StatusNoContent {
		t.Fatalf("restart: got %s, want 204", r)
	}
	st = setup(good.ID, 2)
	if st.State != gitsetup.StateDone || st.Repos[0].State != gitsetup.RepoPresent || st.Repos[1].State != gitsetup.RepoCloned {
		t.Errorf("after the restart: got %+v, want app present and lib cloned again", st)
	}
	if got := sh(good.ID, "cat ~/lib/README"); got != "lib on feature-x" {
		t.Errorf("lib after the restart: got %q", got)
	}
	kinds := adminEventsOf(t, s, good.ID)
	for _, want := range []string{gitsetup.EventStarted, gitsetup.EventCloned, gitsetup.EventPresent, gitsetup.EventFinished} {
		if !strings.Contains(strings.Join(kinds, " "), want) {
			t.Errorf("events of %s: no %s in %v", good.ID, want, kinds)
		}
	}

	// Nowhere is the credential.
	do(http.MethodGet, "/workspaces?session_id="+session, nil)
	places := map[string]string{"API answers": strings.Join(answers, "\n"), "scheduler log": s.logs.tail(1 << 30)}
	for _, ws := range []info{good, wrong, missing} {
		places["docker inspect of "+ws.ID] = innerDocker(t, ws.ServerID, "inspect", "workspace-"+ws.ID)
		places["processes of "+ws.ID] = innerDocker(t, ws.ServerID, "exec", "-u", "root", "workspace-"+ws.ID, "sh", "-c",
			"ps -eww -o args; for p in /proc/[0-9]*; do tr '\\0' '\\n' <$p/environ; done 2>/dev/null; true")
		for _, ev := range eventsOf(t, s, ws.ID) {
			places["events of "+ws.ID] += ev.Message + string(ev.Data) + "\n"
		}
	}
	var sealed bool
	for _, name := range []string{"berth.db", "berth.db-wal", "berth.db-shm"} {
		raw, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		places["SQLite file "+name] = string(raw)
		sealed = sealed || strings.Contains(string(raw), "berth-sealed:v1:")
	}
	if !sealed {
		t.Errorf("no sealed credential in the SQLite files: are they stored at all?")
	}
	for where, text := range places {
		if strings.Contains(text, secret) {
			t.Errorf("the credential is in the %s", where)
		}
		if strings.Contains(where, "inspect") && strings.Contains(text, "GIT_") {
			t.Errorf("the %s has GIT_* variables", where)
		}
	}
	if !strings.Contains(places["scheduler log"], "git setup finished") {
		t.Errorf("the scheduler log tells nothing of the git setup")
	}
	if authed, refused, userinfo := srv.Counts(); authed == 0 || refused == 0 || userinfo != 0 {
		t.Errorf("git server: %d authenticated requests, %d refused, %d with user info in the URL; want some, some, none",
			authed, refused, userinfo)
	}
}

// composeGateway is the compose network's gateway: this machine, as the
// hosts and their containers reach it.
func composeGateway(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", "berth_berth", "--format", "{{(index .IPAM.Config 0).Gateway}}").Output()
	gateway := strings.TrimSpace(string(out))
	if err != nil || gateway == "" {
		t.Fatalf("gateway of the compose network berth_berth: %v %q", err, out)
	}
	return gateway
}

// eventsOf lists a workspace's events from the admin API of a scheduler the
// test started with BERTH_ADMIN_TOKEN=testAdminToken, newest first.
func eventsOf(t *testing.T, s *scheduler, id string) []workspaceEvent {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+"/admin/events?limit=500&workspace_id="+id, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Events []workspaceEvent `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /admin/events: %v", err)
	}
	return out.Events
}
