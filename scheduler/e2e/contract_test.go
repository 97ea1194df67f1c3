package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The contract suite: a black box driving the compose scheduler over HTTP,
// route by route, with the status codes, details and JSON shapes of
// compute-api-contract.md, and the hosts' own dockerds as the witness of
// what really happened.

// workspaceInfoKeys are the fields of WorkspaceInfo (§5.2).
var workspaceInfoKeys = []string{
	"auth_token", "container_id", "created_at", "environment", "host", "id", "image", "last_activity",
	"metadata", "port", "repos", "repositories", "server_id", "session_id", "status", "tier", "user_id",
}

// checkWorkspaceInfo checks a WorkspaceInfo object's shape: the exact key
// set, types, the datetime format and the fixed values.
func checkWorkspaceInfo(t *testing.T, m map[string]any) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(m))
	if diff := cmp.Diff(workspaceInfoKeys, keys); diff != "" {
		t.Errorf("WorkspaceInfo keys (-want +got):\n%s", diff)
	}
	for _, k := range []string{"id", "user_id", "session_id", "status", "tier", "host", "server_id", "container_id", "image"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("%s = %#v, want a string", k, m[k])
		}
	}
	if got := fmt.Sprint(m["port"]); got != "8080" {
		t.Errorf("port = %v, want 8080", got)
	}
	if got, ok := m["repos"].([]any); !ok || len(got) != 0 {
		t.Errorf("repos = %#v, want []", m["repos"])
	}
	if _, ok := m["repositories"].([]any); !ok {
		t.Errorf("repositories = %#v, want a list", m["repositories"])
	}
	if _, ok := m["metadata"].(map[string]any); !ok {
		t.Errorf("metadata = %#v, want an object", m["metadata"])
	}
	if _, ok := m["environment"].(map[string]any); !ok {
		t.Errorf("environment = %#v, want an object", m["environment"])
	}
	if m["auth_token"] != nil {
		t.Errorf("auth_token = %#v, want null", m["auth_token"])
	}
	for _, k := range []string{"created_at", "last_activity"} {
		s, _ := m[k].(string)
		if !isoUTC.MatchString(s) {
			t.Errorf("%s = %#v, want ISO-8601 UTC with Z (microseconds only when non-zero)", k, m[k])
		}
	}
}

// §3.23, §1.3: service routes and the framework's 404/405.
func TestContractServiceRoutes(t *testing.T) {
	needCluster(t)
	api := composeAPI()
	cases := []struct {
		name       string
		caller     caller
		method     string
		path       string
		wantStatus int
		wantBody   map[string]any // compared on these keys
	}{
		{"health without auth", api.anonymous(), http.MethodGet, "/health", 200, map[string]any{"status": "healthy", "service": "compute"}},
		{"ready without auth", api.anonymous(), http.MethodGet, "/ready", 200, map[string]any{"status": "ready", "service": "compute"}},
		{"root with token", api.anonymous().set("X-Internal-Service-Token", api.token), http.MethodGet, "/", 200, map[string]any{"service": "podex-compute", "version": "0.1.0"}},
		{"root without token", api.anonymous(), http.MethodGet, "/", 401, map[string]any{"detail": "Missing service token"}},
		{"root with bad token", api.anonymous().set("X-Internal-Service-Token", "nope"), http.MethodGet, "/", 401, map[string]any{"detail": "Invalid service token"}},
		{"unknown path", api.as("u"), http.MethodGet, "/no/such/route", 404, map[string]any{"detail": "Not Found"}},
		{"unserved method, no auth runs", api.anonymous(), http.MethodPatch, "/workspaces/x", 405, map[string]any{"detail": "Method Not Allowed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.caller.do(t, tc.method, tc.path, nil)
			if r.status != tc.wantStatus {
				t.Fatalf("%s %s: got %s, want %d", tc.method, tc.path, r, tc.wantStatus)
			}
			got := r.object(t)
			for k, want := range tc.wantBody {
				if got[k] != want {
					t.Errorf("%s %s: %s = %#v, want %#v (body %s)", tc.method, tc.path, k, got[k], want, r.body)
				}
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type = %q, want application/json", r.header.Get("Content-Type"))
			}
			if tc.wantStatus == http.StatusMethodNotAllowed {
				allow := r.header.Get("Allow")
				for _, m := range []string{"GET", "DELETE"} {
					if !strings.Contains(allow, m) {
						t.Errorf("Allow = %q, want it to list %s", allow, m)
					}
				}
				if strings.Contains(allow, "PATCH") {
					t.Errorf("Allow = %q lists PATCH, which is not served", allow)
				}
			}
		})
	}
}

// §3.1, §5.1: request validation (422 in the framework's list format) and
// the unsafe id (400). None of these creates anything.
func TestContractCreateValidation(t *testing.T) {
	needCluster(t)
	k := composeAPI().as(uniqueID("e2e-user"))
	type fieldErr struct {
		typ string
		loc []any
		msg string
	}
	cases := []struct {
		name       string
		body       map[string]any
		wantStatus int
		wantDetail string     // for 400
		wantErrs   []fieldErr // for 422
	}{
		{
			name: "missing session_id", body: map[string]any{"workspace_id": uniqueID("e2e-v"), "config": starter()},
			wantStatus: 422, wantErrs: []fieldErr{{"missing", []any{"body", "session_id"}, "Field required"}},
		},
		{
			name: "storage_gb below 5", body: createBody("s", uniqueID("e2e-v"), map[string]any{"tier": "starter", "storage_gb": 4}),
			wantStatus: 422, wantErrs: []fieldErr{{"greater_than_equal", []any{"body", "config", "storage_gb"}, "Input should be greater than or equal to 5"}},
		},
		{
			name: "storage_gb above 500", body: createBody("s", uniqueID("e2e-v"), map[string]any{"tier": "starter", "storage_gb": 501}),
			wantStatus: 422, wantErrs: []fieldErr{{"less_than_equal", []any{"body", "config", "storage_gb"}, "Input should be less than or equal to 500"}},
		},
		{
			name: "unsafe workspace_id (dot)", body: createBody("s", "e2e.bad", starter()),
			wantStatus: 400, wantDetail: "Invalid workspace_id: contains unsafe characters",
		},
		{
			name: "unsafe workspace_id (slash)", body: createBody("s", "../e2e-bad", starter()),
			wantStatus: 400, wantDetail: "Invalid workspace_id: contains unsafe characters",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if id, _ := tc.body["workspace_id"].(string); safeID.MatchString(id) {
				k.deleteOnCleanup(t, id) // should a bug create it
			}
			r := k.do(t, http.MethodPost, "/workspaces", tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("got %s, want %d", r, tc.wantStatus)
			}
			if tc.wantStatus != 422 {
				if got := r.detail(); got != tc.wantDetail {
					t.Errorf("detail = %q, want %q", got, tc.wantDetail)
				}
				return
			}
			errs := r.fieldErrors(t)
			if len(errs) != len(tc.wantErrs) {
				t.Fatalf("got %d errors %s, want %d", len(errs), r.body, len(tc.wantErrs))
			}
			for i, want := range tc.wantErrs {
				got := errs[i]
				for _, key := range []string{"type", "loc", "msg", "input"} {
					if _, ok := got[key]; !ok {
						t.Errorf("error %d has no %q: %v", i, key, got)
					}
				}
				if got["type"] != want.typ || got["msg"] != want.msg || !cmp.Equal(got["loc"], want.loc) {
					t.Errorf("error %d = %v, want type %q, loc %v, msg %q", i, got, want.typ, want.loc, want.msg)
				}
			}
		})
	}
}

// §3.1, §5.2, §15: a create answers 201 with the WorkspaceInfo, secrets
// redacted; it is idempotent for the owner and a conflict for anyone else.
func TestContractCreate(t *testing.T) {
	needCluster(t)
	user, session, id := uniqueID("e2e-user"), uniqueID("e2e-sess"), uniqueID("e2e-create")
	k := composeAPI().as(user)
	config := map[string]any{
		"tier": "starter", "repos": []string{}, "mount_path": "/ignored", // unknown keys are ignored
		"environment": map[string]any{"GITHUB_TOKEN": "ghp_secret", "MY_SECRET": "s", "DB_PASSWORD": "p", "FOO": "bar"},
	}
	r := k.create(t, session, id, config)
	if r.status != http.StatusCreated {
		t.Fatalf("create: got %s, want 201", r)
	}
	m := r.object(t)
	checkWorkspaceInfo(t, m)
	var ws info
	r.into(t, &ws)
	want := info{ID: id, UserID: user, SessionID: session, Status: "running", Tier: "starter", Port: 8080}
	got := info{ID: ws.ID, UserID: ws.UserID, SessionID: ws.SessionID, Status: ws.Status, Tier: ws.Tier, Port: ws.Port}
	if !cmp.Equal(got, want, cmp.AllowUnexported(info{})) {
		t.Errorf("create: got %+v, want %+v", got, want)
	}
	if !slices.ContainsFunc(hosts, func(h struct{ id, addr string }) bool { return h.id == ws.ServerID }) || ws.Host != ws.ServerID {
		t.Errorf("server_id %q, host %q: want one of the compose hosts, host = its hostname", ws.ServerID, ws.Host)
	}
	wantEnv := map[string]string{"GITHUB_TOKEN": "***", "MY_SECRET": "***", "DB_PASSWORD": "***", "FOO": "bar"}
	if diff := cmp.Diff(wantEnv, ws.Environment); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}

	t.Run("container in its host's dockerd with the real secret", func(t *testing.T) {
		if got := containerState(t, ws.ServerID, id); got != "running" {
			t.Fatalf("container of %s on %s: state %q, want running", id, ws.ServerID, got)
		}
		env := innerDocker(t, ws.ServerID, "inspect", "--format", `{{range .Config.Env}}{{println .}}{{end}}`, ws.ContainerID)
		if !strings.Contains(env, "GITHUB_TOKEN=ghp_secret\n") {
			t.Errorf("container env lacks the real GITHUB_TOKEN:\n%s", env)
		}
	})

	t.Run("idempotent re-create by the owner", func(t *testing.T) {
		r := k.do(t, http.MethodPost, "/workspaces", createBody(session, id, config))
		if r.status != http.StatusCreated {
			t.Fatalf("re-create: got %s, want 201", r)
		}
		var again info
		r.into(t, &again)
		if again.ContainerID != ws.ContainerID || again.ServerID != ws.ServerID {
			t.Errorf("re-create: container %s on %s, want the same %s on %s", again.ContainerID, again.ServerID, ws.ContainerID, ws.ServerID)
		}
		n := 0
		for _, h := range hosts {
			if containerState(t, h.id, id) != "" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("after re-create: %d containers for %s across the hosts, want 1", n, id)
		}
	})

	t.Run("re-create by another owner", func(t *testing.T) {
		r := composeAPI().as(user+"-other").do(t, http.MethodPost, "/workspaces", createBody(session, id, config))
		if r.status != http.StatusConflict || r.detail() == "" {
			t.Fatalf("re-create by another user: got %s, want 409 with a detail", r)
		}
		if got := k.status(t, id); got != "running" {
			t.Errorf("after the conflict the owner's workspace is %q, want running", got)
		}
	})
}

// §1.2: the order of the checks and their answers, on a real workspace.
func TestContractAuthOrder(t *testing.T) {
	needCluster(t)
	api := composeAPI()
	user := uniqueID("e2e-user")
	owner := api.as(user)
	ws := owner.mustCreate(t, uniqueID("e2e-sess"), uniqueID("e2e-auth"), nil)
	path := "/workspaces/" + ws.ID

	cases := []struct {
		name       string
		caller     caller
		method     string
		path       string
		body       any
		wantStatus int
		wantDetail string // "" = not checked (422 lists)
	}{
		{"no user id, no token", api.anonymous(), "GET", path, nil, 401, "Missing user ID header"},
		{"no user id, good token", owner.without("X-User-ID"), "GET", path, nil, 401, "Missing user ID header"},
		{"empty user id", owner.set("X-User-ID", ""), "GET", path, nil, 401, "Missing user ID header"},
		{"bad token", owner.set("X-Internal-Service-Token", "wrong"), "GET", path, nil, 401, "Invalid service token"},
		{"missing token", owner.without("X-Internal-Service-Token"), "GET", path, nil, 401, "Missing service token"},
		{"authorization without bearer", owner.without("X-Internal-Service-Token").set("Authorization", "Basic "+api.token), "GET", path, nil, 401, "Missing service token"},
		{"bearer token accepted", owner.without("X-Internal-Service-Token").set("Authorization", "Bearer "+api.token), "GET", path, nil, 200, ""},
		{"X- token wins over bearer", owner.set("X-Internal-Service-Token", "wrong").set("Authorization", "Bearer "+api.token), "GET", path, nil, 401, "Invalid service token"},
		{"other user's workspace", api.as(user + "-other"), "GET", path, nil, 403, "Not authorized to access this workspace"},
		{"owner id differs in case", api.as(strings.ToUpper(user)), "GET", path, nil, 403, "Not authorized to access this workspace"},
		{"unknown workspace", owner, "GET", "/workspaces/" + uniqueID("e2e-nope"), nil, 404, "Workspace not found"},
		{"unsafe id in path", owner, "GET", "/workspaces/e2e.bad", nil, 400, "Invalid workspace_id: contains unsafe characters"},
		{"other user's stop", api.as(user + "-other"), "POST", path + "/stop", nil, 403, "Not authorized to access this workspace"},
		{"unknown workspace's exec", owner, "POST", "/workspaces/" + uniqueID("e2e-nope") + "/exec", map[string]any{"command": "true"}, 404, "Workspace not found"},
		// Issue 12: the body is read after auth (a deliberate deviation from
		// §1.2 step 1), so an anonymous malformed body is 401, not 422.
		{"malformed JSON after the user check", api.anonymous(), "POST", path + "/exec", "{", 401, "Missing user ID header"},
		{"malformed JSON of an authenticated caller", owner, "POST", path + "/exec", "{", 422, ""},
		{"a file write authenticates before it reads its body", api.anonymous(), "PUT", path + "/files/content", "{", 401, "Missing user ID header"},
		{"bad body before ownership", api.as(user + "-other"), "POST", path + "/exec", map[string]any{}, 422, ""},
		{"owner", owner, "GET", path, nil, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.caller.do(t, tc.method, tc.path, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("%s %s: got %s, want %d", tc.method, tc.path, r, tc.wantStatus)
			}
			if tc.wantDetail != "" {
				if got := r.detail(); got != tc.wantDetail {
					t.Errorf("detail = %q, want %q", got, tc.wantDetail)
				}
			}
			if tc.wantStatus == 422 && len(r.fieldErrors(t)) == 0 {
				t.Errorf("422 with an empty detail list: %s", r.body)
			}
		})
	}
	if got := owner.status(t, ws.ID); got != "running" {
		t.Errorf("after the refused calls the workspace is %q, want running", got)
	}
}

// §3.2–§3.8, §3.15, §3.18, §8, §12: the life of a workspace, with each
// route's answer and each host's dockerd as the witness.
func TestContractLifecycle(t *testing.T) {
	needCluster(t)
	api := composeAPI()
	user := uniqueID("e2e-user")
	k := api.as(user)
	sessA, sessB := uniqueID("e2e-sess"), uniqueID("e2e-sess")
	ws := k.mustCreate(t, sessA, uniqueID("e2e-life"), nil)
	other := k.mustCreate(t, sessB, uniqueID("e2e-life"), nil)
	host := ws.ServerID

	notRunning := execResult{ExitCode: -1, Stderr: "Workspace is not running (status: stopped)"}
	echo := map[string]any{"command": "echo ok"}

	t.Run("get syncs the status from docker", func(t *testing.T) {
		r := k.get(t, ws.ID)
		if r.status != http.StatusOK {
			t.Fatalf("GET: got %s, want 200", r)
		}
		checkWorkspaceInfo(t, r.object(t))
		// Behind berth's back: the host's own dockerd stops the container.
		innerDocker(t, host, "stop", "-t", "1", ws.ContainerID)
		if got := k.status(t, ws.ID); got != "stopped" {
			t.Errorf("GET after docker stop: status %q, want stopped", got)
		}
		if got := k.exec(t, ws.ID, echo); got != notRunning {
			t.Errorf("exec on the stopped workspace: got %+v, want %+v", got, notRunning)
		}
	})

	t.Run("restart", func(t *testing.T) {
		r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("restart: got %s, want 204 with no body", r)
		}
		if got := k.status(t, ws.ID); got != "running" {
			t.Errorf("GET after restart: %q, want running", got)
		}
		if got := containerState(t, host, ws.ID); got != "running" {
			t.Errorf("container after restart: %q, want running", got)
		}
		if got, want := k.exec(t, ws.ID, echo), (execResult{Stdout: "ok\n"}); got != want {
			t.Errorf("exec after restart: got %+v, want %+v", got, want)
		}
	})

	t.Run("stop then restart", func(t *testing.T) {
		r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/stop", nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("stop: got %s, want 204 with no body", r)
		}
		if got := k.status(t, ws.ID); got != "stopped" {
			t.Errorf("GET after stop: %q, want stopped", got)
		}
		if got := containerState(t, host, ws.ID); got != "exited" {
			t.Errorf("container after stop: %q, want exited", got)
		}
		if got := k.exec(t, ws.ID, echo); got != notRunning {
			t.Errorf("exec after stop: got %+v, want %+v", got, notRunning)
		}
		if r := k.do(t, http.MethodGet, "/workspaces/"+ws.ID+"/health", nil); r.status != http.StatusOK || !jsonEqual(string(r.body), `{"healthy":false,"status":"stopped"}`) {
			t.Errorf("health after stop: got %s, want 200 {\"healthy\":false,\"status\":\"stopped\"}", r)
		}
		if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/stop", nil); r.status != http.StatusNoContent {
			t.Errorf("second stop: got %s, want 204", r)
		}
		if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/restart", nil); r.status != http.StatusNoContent {
			t.Fatalf("restart: got %s, want 204", r)
		}
		if got := k.status(t, ws.ID); got != "running" {
			t.Errorf("GET after restart: %q, want running", got)
		}
		if got := containerState(t, host, ws.ID); got != "running" {
			t.Errorf("container after restart: %q, want running", got)
		}
	})

	t.Run("list", func(t *testing.T) {
		cases := []struct {
			name   string
			caller caller
			query  string
			want   []string
		}{
			{"session filter", k, "?session_id=" + sessA, []string{ws.ID}},
			{"other session", k, "?session_id=" + sessB, []string{other.ID}},
			{"no filter", k, "", []string{ws.ID, other.ID}},
			{"unknown session", k, "?session_id=" + uniqueID("e2e-none"), []string{}},
			{"another user", api.as(user + "-other"), "", []string{}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.caller.do(t, http.MethodGet, "/workspaces"+tc.query, nil)
				if r.status != http.StatusOK {
					t.Fatalf("got %s, want 200", r)
				}
				var items []map[string]any
				r.into(t, &items)
				if items == nil {
					t.Fatalf("body %s, want a JSON list", r.body)
				}
				got := []string{}
				for _, it := range items {
					checkWorkspaceInfo(t, it)
					got = append(got, it["id"].(string))
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(tc.want))
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("ids (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("heartbeat", func(t *testing.T) {
		var before info
		k.get(t, ws.ID).into(t, &before)
		r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/heartbeat", nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("heartbeat: got %s, want 204 with no body", r)
		}
		var after info
		k.get(t, ws.ID).into(t, &after)
		if after.Status != "running" {
			t.Errorf("status after heartbeat: %q, want running (unchanged)", after.Status)
		}
		if b, a := parseISO(t, before.LastActivity), parseISO(t, after.LastActivity); a.Before(b) {
			t.Errorf("last_activity went back: %s → %s", before.LastActivity, after.LastActivity)
		}
	})

	t.Run("health", func(t *testing.T) {
		r := k.do(t, http.MethodGet, "/workspaces/"+ws.ID+"/health", nil)
		if r.status != http.StatusOK {
			t.Fatalf("health: got %s, want 200", r)
		}
		if got, want := string(r.body), `{"healthy":true,"status":"running"}`; !jsonEqual(got, want) {
			t.Errorf("health: got %s, want %s", got, want)
		}
	})

	t.Run("resources", func(t *testing.T) {
		r := k.do(t, http.MethodGet, "/workspaces/"+ws.ID+"/resources", nil)
		if r.status != http.StatusOK {
			t.Fatalf("resources: got %s, want 200", r)
		}
		m := r.object(t)
		want := []string{"collected_at", "container_uptime_seconds", "cpu_limit_cores", "cpu_percent", "disk_read_mb",
			"disk_write_mb", "memory_limit_mb", "memory_percent", "memory_used_mb", "network_rx_mb", "network_tx_mb"}
		got := slices.Sorted(maps.Keys(m))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("resources keys (-want +got):\n%s", diff)
		}
		for _, key := range want {
			switch v := m[key].(type) {
			case json.Number:
			case nil:
				if key != "collected_at" {
					t.Errorf("%s is null, want a number", key)
				}
			case string:
				if key != "collected_at" || !isoUTC.MatchString(v) {
					t.Errorf("%s = %q, want a number (collected_at: an ISO datetime)", key, v)
				}
			default:
				t.Errorf("%s = %#v, want a number", key, v)
			}
		}
		if got := fmt.Sprint(m["memory_limit_mb"]); got != "4096" {
			t.Errorf("memory_limit_mb = %s, want 4096 (starter)", got)
		}
	})

	t.Run("mark for deletion and the cleanup loop", func(t *testing.T) {
		oh := other.ServerID
		r := k.do(t, http.MethodPost, "/workspaces/"+other.ID+"/mark-for-deletion", nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("mark-for-deletion: got %s, want 202", r)
		}
		if want := fmt.Sprintf(`{"status":"marked_for_deletion","workspace_id":%q}`, other.ID); !jsonEqual(string(r.body), want) {
			t.Errorf("mark-for-deletion body: got %s, want %s", r.body, want)
		}
		// Sticky until the cleanup loop (every 5 s) takes it.
		if r := k.get(t, other.ID); r.status == http.StatusOK {
			var got info
			r.into(t, &got)
			if got.Status != "pending_deletion" {
				t.Errorf("GET after mark: status %q, want pending_deletion", got.Status)
			}
		} else if r.status != http.StatusNotFound {
			t.Errorf("GET after mark: got %s, want 200 pending_deletion or 404", r)
		}
		waitFor(t, 30*time.Second, "cleanup loop removes the marked workspace", func() (bool, string) {
			r := k.get(t, other.ID)
			state := containerState(t, oh, other.ID)
			return r.status == http.StatusNotFound && state == "", fmt.Sprintf("GET %s; container %q", r, state)
		})
		if r := k.get(t, other.ID); r.detail() != "Workspace not found" {
			t.Errorf("GET after cleanup: got %s, want 404 Workspace not found", r)
		}
		if dataDirExists(t, oh, other.ID) {
			t.Errorf("cleanup left the data directory of %s on %s, want it removed (§3.7)", other.ID, oh)
		}
	})

	t.Run("delete keeps the data", func(t *testing.T) {
		r := k.do(t, http.MethodDelete, "/workspaces/"+ws.ID, nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("DELETE: got %s, want 204 with no body", r)
		}
		if got := containerState(t, host, ws.ID); got != "" {
			t.Errorf("container after DELETE: %q in %s's dockerd, want none", got, host)
		}
		if !dataDirExists(t, host, ws.ID) {
			t.Errorf("DELETE removed %s/%s/home on %s, want it kept", dataRoot, ws.ID, host)
		}
		if r := k.get(t, ws.ID); r.status != http.StatusNotFound || r.detail() != "Workspace not found" {
			t.Errorf("GET after DELETE: got %s, want 404 Workspace not found", r)
		}
		if r := k.do(t, http.MethodDelete, "/workspaces/"+ws.ID, nil); r.status != http.StatusNotFound {
			t.Errorf("second DELETE: got %s, want 404", r)
		}
	})
}

// §3.9, §3.10, §15: exec and the real exec stream.
func TestContractExec(t *testing.T) {
	needCluster(t)
	api := composeAPI()
	user := uniqueID("e2e-user")
	k := api.as(user)
	ws := k.mustCreate(t, uniqueID("e2e-sess"), uniqueID("e2e-exec"), nil)

	cases := []struct {
		name string
		body map[string]any
		want execResult
	}{
		{"stdout, stderr and exit code", map[string]any{"command": "echo out; echo err >&2; exit 3"}, execResult{3, "out\n", "err\n"}},
		{"as dev in /home/dev", map[string]any{"command": "id -un; id -u; pwd; echo $HOME"}, execResult{0, "dev\n1000\n/home/dev\n/home/dev\n", ""}},
		{"working_dir", map[string]any{"command": "pwd", "working_dir": "/tmp"}, execResult{0, "/tmp\n", ""}},
		{"null working_dir", map[string]any{"command": "pwd", "working_dir": nil}, execResult{0, "/home/dev\n", ""}},
		{"bash features", map[string]any{"command": "a=(x y); echo ${#a[@]} $((6*7))"}, execResult{0, "2 42\n", ""}},
		{"utf-8 output", map[string]any{"command": "printf 'h\\xc3\\xa9 \\xe2\\x9c\\x93'"}, execResult{0, "hé ✓", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := k.exec(t, ws.ID, tc.body); got != tc.want {
				t.Errorf("exec %q: got %+v, want %+v", tc.body["command"], got, tc.want)
			}
		})
	}

	t.Run("missing command", func(t *testing.T) {
		r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/exec", map[string]any{"timeout": 5})
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("got %s, want 422", r)
		}
		if errs := r.fieldErrors(t); len(errs) != 1 || errs[0]["type"] != "missing" || !cmp.Equal(errs[0]["loc"], []any{"body", "command"}) {
			t.Errorf("422 detail = %v, want one missing body.command", errs)
		}
	})

	t.Run("timeout kills the process", func(t *testing.T) {
		// `; true` keeps bash as the parent of sleep, so both must go.
		start := time.Now()
		got := k.exec(t, ws.ID, map[string]any{"command": "sleep 387; true", "timeout": 1})
		if want := (execResult{ExitCode: 124, Stderr: "Command timed out"}); got != want {
			t.Errorf("exec past its timeout: got %+v, want %+v", got, want)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("exec with timeout 1 answered after %s", d)
		}
		// Seen from the host's own dockerd, not through berth.
		waitFor(t, 10*time.Second, "the timed-out command's processes are gone", func() (bool, string) {
			left := processesMatching(t, ws.ServerID, ws.ContainerID, "sleep 38[7]")
			return left == "", left
		})
	})

	t.Run("stream", func(t *testing.T) {
		events, _, header := streamExec(t, k, ws.ID, map[string]any{"command": `printf 'a\nb\n'; sleep 0.2; echo err >&2`})
		for h, want := range map[string]string{
			"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
			"Connection": "keep-alive", "X-Accel-Buffering": "no",
		} {
			if got := header.Get(h); got != want {
				t.Errorf("header %s = %q, want %q", h, got, want)
			}
		}
		// Chunk boundaries are the daemon's (one write may come as two
		// chunks): the stdout chunks, then stderr's, then [DONE].
		if n := len(events); n < 3 || events[n-1] != "[DONE]" || events[n-2] != `err\n` ||
			strings.Join(events[:n-2], "") != `a\nb\n` {
			t.Errorf("events = %q, want the chunks of a\\nb\\n, then err\\n, then [DONE]", events)
		}
	})

	t.Run("stream is incremental", func(t *testing.T) {
		events, times, _ := streamExec(t, k, ws.ID, map[string]any{"command": "echo first; sleep 1; echo second"})
		if diff := cmp.Diff([]string{`first\n`, `second\n`, "[DONE]"}, events); diff != "" {
			t.Fatalf("events (-want +got):\n%s", diff)
		}
		// The first chunk must be read while the command still sleeps,
		// about a second before the second one.
		if gap := times[1].Sub(times[0]); gap < 500*time.Millisecond {
			t.Errorf("first chunk read only %s before the second: want it streamed before the command ends (~1 s earlier)", gap)
		}
	})

	t.Run("stream timeout", func(t *testing.T) {
		events, _, _ := streamExec(t, k, ws.ID, map[string]any{"command": "sleep 388; true", "timeout": 1})
		if diff := cmp.Diff([]string{"Command timed out", "[DONE]"}, events); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		waitFor(t, 10*time.Second, "the timed-out stream command's processes are gone", func() (bool, string) {
			left := processesMatching(t, ws.ServerID, ws.ContainerID, "sleep 38[8]")
			return left == "", left
		})
	})

	t.Run("stream owner check is plain JSON", func(t *testing.T) {
		r := api.as(user+"-other").do(t, http.MethodPost, "/workspaces/"+ws.ID+"/exec-stream", map[string]any{"command": "true"})
		if r.status != http.StatusForbidden || r.detail() != "Not authorized to access this workspace" {
			t.Errorf("got %s, want 403 Not authorized to access this workspace", r)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
	})
}

// streamExec runs POST …/exec-stream and returns the events' payloads, the
// time each was read, and the response. It checks the framing: every event
// is one `data: ` line followed by an empty line, and the stream ends at
// [DONE].
func streamExec(t *testing.T, k caller, id string, body map[string]any) ([]string, []time.Time, http.Header) {
	t.Helper()
	resp := k.open(t, http.MethodPost, "/workspaces/"+id+"/exec-stream", body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exec-stream: got %d, want 200", resp.StatusCode)
	}
	var events []string
	var times []time.Time
	var lines []string
	err := readLines(resp.Body, func(line string, at time.Time) {
		lines = append(lines, line)
		if payload, ok := strings.CutPrefix(line, "data: "); ok {
			events = append(events, payload)
			times = append(times, at)
		}
	})
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	for i, line := range lines {
		switch {
		case i%2 == 0 && !strings.HasPrefix(line, "data: "):
			t.Errorf("line %d = %q, want a `data: ` line (stream %q)", i, line, lines)
		case i%2 == 1 && line != "":
			t.Errorf("line %d = %q, want the empty line that ends an event (stream %q)", i, line, lines)
		}
	}
	if len(events) == 0 || events[len(events)-1] != "[DONE]" || len(lines) != 2*len(events) {
		t.Errorf("stream %q: want events ending with data: [DONE] and nothing after", lines)
	}
	return events, times, resp.Header
}

// processesMatching lists the command lines of the processes in a
// container that match the (grep) pattern, read from /proc through the
// host's own dockerd. Write the pattern so it does not match itself (e.g.
// "sleep 38[7]").
func processesMatching(t *testing.T, host, container, pattern string) string {
	t.Helper()
	script := `for p in /proc/[0-9]*; do tr '\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done | grep -e "$1" || true`
	return innerDocker(t, host, "exec", container, "sh", "-c", script, "sh", pattern)
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return cmp.Equal(x, y)
}

// §3.11–§3.14: files, through exec as dev, with the host's dockerd as the
// witness of ownership.
func TestContractFiles(t *testing.T) {
	needCluster(t)
	user := uniqueID("e2e-user")
	k := composeAPI().as(user)
	ws := k.mustCreate(t, uniqueID("e2e-sess"), uniqueID("e2e-files"), nil)
	base := "/workspaces/" + ws.ID + "/files"
	content := "hello\nwörld ✓ $HOME `x` 'q'\n"
	path := "e2e/sub/dir/hello.txt"

	put := func(t *testing.T, body any) response {
		t.Helper()
		return k.do(t, http.MethodPut, base+"/content", body)
	}
	read := func(t *testing.T, p string) response {
		t.Helper()
		return k.do(t, http.MethodGet, base+"/content?path="+url.QueryEscape(p), nil)
	}
	list := func(t *testing.T, p string) []map[string]string {
		t.Helper()
		q := ""
		if p != "" {
			q = "?path=" + url.QueryEscape(p)
		}
		r := k.do(t, http.MethodGet, base+q, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list %q: got %s, want 200", p, r)
		}
		var entries []map[string]string
		r.into(t, &entries)
		if entries == nil {
			t.Fatalf("list %q: body %s, want a JSON list", p, r.body)
		}
		return entries
	}
	entry := func(entries []map[string]string, name string) map[string]string {
		for _, e := range entries {
			if e["name"] == name {
				return e
			}
		}
		return nil
	}

	t.Run("write creates parents, owned by dev", func(t *testing.T) {
		r := put(t, map[string]any{"path": path, "content": content})
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("write: got %s, want 204 with no body", r)
		}
		got := innerDocker(t, ws.ServerID, "exec", ws.ContainerID, "stat", "-c", "%U:%G %n",
			"/home/dev/e2e", "/home/dev/e2e/sub", "/home/dev/e2e/sub/dir", "/home/dev/"+path)
		want := "dev:dev /home/dev/e2e\ndev:dev /home/dev/e2e/sub\ndev:dev /home/dev/e2e/sub/dir\ndev:dev /home/dev/" + path
		if got != want {
			t.Errorf("ownership in the container:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("read", func(t *testing.T) {
		cases := []struct{ name, path string }{
			{"relative to /home/dev", path},
			{"absolute", "/home/dev/" + path},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := read(t, tc.path)
				if r.status != http.StatusOK {
					t.Fatalf("read: got %s, want 200", r)
				}
				var got map[string]any
				r.into(t, &got)
				if diff := cmp.Diff(map[string]any{"path": tc.path, "content": content}, got); diff != "" {
					t.Errorf("read body (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("read errors", func(t *testing.T) {
		r := read(t, "e2e/missing.txt")
		if r.status != http.StatusNotFound || !strings.HasPrefix(r.detail(), "Failed to read file: ") || !strings.Contains(r.detail(), "No such file or directory") {
			t.Errorf("read of a missing file: got %s, want 404 Failed to read file: …No such file or directory", r)
		}
		r = k.do(t, http.MethodGet, base+"/content", nil)
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("read without path: got %s, want 422", r)
		}
		if errs := r.fieldErrors(t); len(errs) != 1 || !cmp.Equal(errs[0]["loc"], []any{"query", "path"}) {
			t.Errorf("read without path: detail %v, want one error at query.path", errs)
		}
	})

	t.Run("quoting", func(t *testing.T) {
		// Quotes, spaces and $ reach the shell only as data. The listing
		// joins a name's columns with single spaces (§3.11).
		odd := "e2e/odd/it's  a $HOME `x`.txt"
		if r := put(t, map[string]any{"path": odd, "content": "odd"}); r.status != http.StatusNoContent {
			t.Fatalf("write %q: got %s, want 204", odd, r)
		}
		if r := read(t, odd); r.status != http.StatusOK || !jsonEqual(string(r.body), fmt.Sprintf(`{"path":%q,"content":"odd"}`, odd)) {
			t.Errorf("read %q: got %s", odd, r)
		}
		if e := entry(list(t, "e2e/odd"), "it's a $HOME `x`.txt"); e == nil || e["size"] != "3" {
			t.Errorf("listing of e2e/odd: entry %v, want the name with single spaces and size 3", e)
		}
		if r := k.do(t, http.MethodDelete, base+"?path="+url.QueryEscape(odd), nil); r.status != http.StatusNoContent {
			t.Errorf("delete %q: got %s, want 204", odd, r)
		}
		if got := list(t, "e2e/odd"); len(got) != 2 {
			t.Errorf("e2e/odd after delete: %v, want only . and ..", got)
		}
	})

	t.Run("write edge cases", func(t *testing.T) {
		if r := put(t, map[string]any{"path": "e2e/empty.txt", "content": nil}); r.status != http.StatusBadRequest || r.detail() != "Content is required" {
			t.Errorf("write with null content: got %s, want 400 Content is required", r)
		}
		if r := put(t, map[string]any{"path": "e2e/empty.txt", "content": ""}); r.status != http.StatusNoContent {
			t.Fatalf("write of empty content: got %s, want 204", r)
		}
		if r := read(t, "e2e/empty.txt"); r.status != http.StatusOK || !jsonEqual(string(r.body), `{"path":"e2e/empty.txt","content":""}`) {
			t.Errorf("read of the empty file: got %s", r)
		}
	})

	t.Run("list", func(t *testing.T) {
		entries := list(t, "e2e/sub/dir")
		for _, want := range []map[string]string{
			{"name": ".", "type": "directory"},
			{"name": "..", "type": "directory"},
			{"name": "hello.txt", "type": "file", "size": fmt.Sprint(len(content))},
		} {
			got := entry(entries, want["name"])
			if got == nil {
				t.Errorf("listing %v lacks %q", entries, want["name"])
				continue
			}
			for key, v := range want {
				if got[key] != v {
					t.Errorf("entry %q: %s = %q, want %q", want["name"], key, got[key], v)
				}
			}
			if len(got) != 3 || got["size"] == "" {
				t.Errorf("entry %v: want exactly name, type and a size string", got)
			}
		}
		if e := entry(list(t, ""), "e2e"); e == nil || e["type"] != "directory" {
			t.Errorf("default listing (path .): e2e entry %v, want a directory", e)
		}
		r := k.do(t, http.MethodGet, base+"?path="+url.QueryEscape("e2e/no/such/dir"), nil)
		if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "[]" {
			t.Errorf("list of a missing directory: got %s, want 200 []", r)
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := k.do(t, http.MethodDelete, base+"?path="+url.QueryEscape(path), nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("delete: got %s, want 204 with no body", r)
		}
		if r := read(t, path); r.status != http.StatusNotFound {
			t.Errorf("read after delete: got %s, want 404", r)
		}
		if e := entry(list(t, "e2e/sub/dir"), "hello.txt"); e != nil {
			t.Errorf("listing after delete still has %v", e)
		}
		if r := k.do(t, http.MethodDelete, base+"?path="+url.QueryEscape(path), nil); r.status != http.StatusNotFound {
			t.Errorf("second delete: got %s, want 404", r)
		}
		if r := k.do(t, http.MethodDelete, base+"?path=e2e", nil); r.status != http.StatusNoContent {
			t.Errorf("recursive delete of e2e: got %s, want 204", r)
		}
		if got := list(t, "e2e"); len(got) != 0 {
			t.Errorf("list after recursive delete: %v, want []", got)
		}
	})

	t.Run("stopped workspace", func(t *testing.T) {
		if r := k.do(t, http.MethodPost, "/workspaces/"+ws.ID+"/stop", nil); r.status != http.StatusNoContent {
			t.Fatalf("stop: got %s, want 204", r)
		}
		if r := read(t, ".bashrc"); r.status != http.StatusNotFound || r.detail() != "Failed to read file: Workspace is not running (status: stopped)" {
			t.Errorf("read on a stopped workspace: got %s, want 404 Failed to read file: Workspace is not running (status: stopped)", r)
		}
		if got := list(t, "."); len(got) != 0 {
			t.Errorf("list on a stopped workspace: %v, want []", got)
		}
	})
}
