package computeapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

func TestAuthOrder(t *testing.T) {
	bob := aliceWS()
	bob.ID, bob.UserID = "bobs", "bob"
	tests := []struct {
		name       string
		token      string // the configured token
		req        req
		wantStatus int
		wantBody   string
	}{
		{"missing both headers", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerUserID: "", headerServiceToken: ""}},
			401, detail("Missing user ID header")},
		{"missing user, wrong token", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerUserID: "", headerServiceToken: "nope"}},
			401, detail("Missing user ID header")},
		{"user, no token", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerServiceToken: ""}},
			401, detail("Missing service token")},
		{"wrong token", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerServiceToken: "nope"}},
			401, detail("Invalid service token")},
		{"X- header wins over a right bearer", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerServiceToken: "nope", "Authorization": "Bearer " + testToken}},
			401, detail("Invalid service token")},
		{"bearer alone", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerServiceToken: "", "Authorization": "Bearer " + testToken}},
			200, aliceJSON},
		{"wrong bearer", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerServiceToken: "", "Authorization": "Bearer nope"}},
			401, detail("Invalid service token")},
		{"authorization not bearer", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerServiceToken: "", "Authorization": "Basic " + testToken}},
			401, detail("Missing service token")},
		{"no token configured", "",
			req{method: "GET", path: "/workspaces/ws1"},
			500, detail("Service authentication not configured")},
		// Issue 12 deviates from §1.2 step 1 on purpose: the body is read
		// after auth, so an unauthenticated malformed body is 401, not 422.
		{"malformed JSON comes after the headers (deviation from §1.2)", testToken,
			req{method: "POST", path: "/workspaces/ws1/exec", body: "{bad", header: map[string]string{headerUserID: "", headerServiceToken: ""}},
			401, detail("Missing user ID header")},
		{"malformed JSON comes after the token", testToken,
			req{method: "POST", path: "/workspaces/ws1/exec", body: "{bad", header: map[string]string{headerServiceToken: "nope"}},
			401, detail("Invalid service token")},
		{"malformed JSON of an authenticated caller is 422", testToken,
			req{method: "POST", path: "/workspaces/ws1/exec", body: "{bad"},
			422, `{"detail":[{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},
				"ctx":{"error":"invalid character 'b' looking for beginning of object key string"}}]}`},
		{"missing body is validation, after auth", testToken,
			req{method: "POST", path: "/workspaces/ws1/exec", header: map[string]string{headerServiceToken: ""}},
			401, detail("Missing service token")},
		{"bad body for someone else's workspace is 422, not 403", testToken,
			req{method: "POST", path: "/workspaces/bobs/exec", body: `{"timeout":"x"}`},
			422, `{"detail":[
				{"type":"missing","loc":["body","command"],"msg":"Field required","input":{"timeout":"x"}},
				{"type":"int_parsing","loc":["body","timeout"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]}`},
		{"good body for someone else's workspace is 403", testToken,
			req{method: "POST", path: "/workspaces/bobs/exec", body: `{"command":"ls"}`},
			403, detail("Not authorized to access this workspace")},
		{"bad body beats a bad id", testToken,
			req{method: "POST", path: "/workspaces/a.b/exec", body: `{}`},
			422, `{"detail":[{"type":"missing","loc":["body","command"],"msg":"Field required","input":{}}]}`},
		{"unsafe id", testToken,
			req{method: "POST", path: "/workspaces/a.b/exec", body: `{"command":"ls"}`},
			400, detail("Invalid workspace_id: contains unsafe characters")},
		{"empty id", testToken,
			req{method: "POST", path: "/workspaces//stop"},
			400, detail("Invalid workspace_id: cannot be empty")},
		{"unknown id", testToken,
			req{method: "GET", path: "/workspaces/nope"},
			404, detail("Workspace not found")},
		{"other owner", testToken,
			req{method: "GET", path: "/workspaces/bobs"},
			403, detail("Not authorized to access this workspace")},
		{"owner id is case-sensitive", testToken,
			req{method: "GET", path: "/workspaces/ws1", header: map[string]string{headerUserID: "Alice"}},
			403, detail("Not authorized to access this workspace")},
		{"root needs the token", testToken,
			req{method: "GET", path: "/", header: map[string]string{headerServiceToken: ""}},
			401, detail("Missing service token")},
		{"root needs no user", testToken,
			req{method: "GET", path: "/", header: map[string]string{headerUserID: ""}},
			200, `{"service":"podex-compute","version":"0.1.0"}`},
		{"health needs nothing", "",
			req{method: "GET", path: "/health", header: map[string]string{headerUserID: "", headerServiceToken: ""}},
			200, `{"status":"healthy","service":"compute","version":"1.2.3"}`},
		{"ready needs nothing", "",
			req{method: "GET", path: "/ready", header: map[string]string{headerUserID: "", headerServiceToken: ""}},
			200, `{"status":"ready","service":"compute"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEcho(newFake(aliceWS(), bob), tt.token)
			checkJSON(t, tt.req.send(e), tt.wantStatus, tt.wantBody)
		})
	}
}

func TestFramework404And405(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string
		wantAllow  []string
	}{
		{"PATCH a workspace", "PATCH", "/workspaces/x", 405, detail("Method Not Allowed"), []string{"GET", "DELETE"}},
		{"PUT exec", "PUT", "/workspaces/x/exec", 405, detail("Method Not Allowed"), []string{"POST"}},
		{"POST files", "POST", "/workspaces/x/files", 405, detail("Method Not Allowed"), []string{"GET", "DELETE"}},
		{"unknown path", "GET", "/nope", 404, detail("Not Found"), nil},
		{"unknown sub-path", "GET", "/workspaces/x/nope", 404, detail("Not Found"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEcho(newFake(aliceWS()), testToken)
			// No auth headers: neither answer runs any auth.
			rec := req{method: tt.method, path: tt.path, header: map[string]string{headerUserID: "", headerServiceToken: ""}}.send(e)
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			allow := rec.Header().Get("Allow")
			for _, m := range tt.wantAllow {
				if !strings.Contains(allow, m) {
					t.Errorf("Allow: got %q, want it to list %s", allow, m)
				}
			}
		})
	}
}

// createdJSON is what the fake creates for alice from {"session_id":"s1"}.
const createdJSON = `{"id":"generated-id","user_id":"alice","session_id":"s1","status":"running","tier":"starter_arm",
	"host":"host-a","port":8080,"server_id":"srv-1","container_id":"ctr-new","repos":[],
	"created_at":"2026-01-05T10:11:12.345678Z","last_activity":"2026-01-05T10:11:12.345678Z","metadata":{},
	"auth_token":null,"image":"podex/workspace:latest","repositories":[],"environment":{}}`

func TestCreate(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		createErr  error
		wantStatus int
		wantBody   string
		wantReq    *orchestrator.CreateRequest // nil: Create must not be called
	}{
		{name: "minimal", body: `{"session_id":"s1"}`, wantStatus: 201, wantBody: createdJSON,
			wantReq: &orchestrator.CreateRequest{UserID: "alice", SessionID: "s1",
				Config: orchestrator.WorkspaceConfig{Tier: "starter_arm"}}},
		{name: "what the API sends, mount_path ignored",
			body: `{"session_id":"s1","workspace_id":"w-1","config":{"tier":"starter","repos":["r1","r2"],"git_branch":"dev",
				"git_name":"A","git_email":"a@x","git_credentials":"u:t","base_image":"img:1","region_preference":"eu",
				"environment":{"GH_TOKEN":"t","ENABLE_SSHD":"true"},"storage_gb":"30","timeout_hours":24.0,"mount_path":"/x",
				"post_init_commands":["make"],"template_id":null}}`,
			wantStatus: 201,
			wantBody: `{"id":"w-1","user_id":"alice","session_id":"s1","status":"running","tier":"starter",
				"host":"host-a","port":8080,"server_id":"srv-1","container_id":"ctr-new","repos":[],
				"created_at":"2026-01-05T10:11:12.345678Z","last_activity":"2026-01-05T10:11:12.345678Z","metadata":{},
				"auth_token":null,"image":"podex/workspace:latest","repositories":["r1","r2"],
				"environment":{"GH_TOKEN":"***","ENABLE_SSHD":"true"}}`,
			wantReq: &orchestrator.CreateRequest{UserID: "alice", SessionID: "s1", WorkspaceID: "w-1",
				Config: orchestrator.WorkspaceConfig{Tier: "starter", Repos: []string{"r1", "r2"},
					Environment: map[string]string{"GH_TOKEN": "t", "ENABLE_SSHD": "true"}, GitCredentials: "u:t",
					Settings: registry.Settings{GitBranch: "dev", GitName: "A", GitEmail: "a@x", BaseImage: "img:1",
						RegionPreference: "eu",
						IdleTimeoutHours: 24 /* timeout_hours is the idle limit */}}}},
		{name: "same owner again gets the existing record", body: `{"session_id":"other","workspace_id":"ws1"}`,
			wantStatus: 201, wantBody: aliceJSON,
			wantReq: &orchestrator.CreateRequest{UserID: "alice", SessionID: "other", WorkspaceID: "ws1",
				Config: orchestrator.WorkspaceConfig{Tier: "starter_arm"}}},
		{name: "another owner's id", body: `{"session_id":"s1","workspace_id":"bobs"}`,
			wantStatus: 409, wantBody: detail("Workspace ID already in use"),
			wantReq: &orchestrator.CreateRequest{UserID: "alice", SessionID: "s1", WorkspaceID: "bobs",
				Config: orchestrator.WorkspaceConfig{Tier: "starter_arm"}}},

		// 422s.
		{name: "no body", wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
		{name: "body not an object", body: `[1]`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[1]}]}`},
		{name: "session_id missing", body: `{"config":{}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["body","session_id"],"msg":"Field required","input":{"config":{}}}]}`},
		{name: "session_id not a string", body: `{"session_id":5}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"string_type","loc":["body","session_id"],"msg":"Input should be a valid string","input":5}]}`},
		{name: "workspace_id not a string", body: `{"session_id":"s","workspace_id":true}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"string_type","loc":["body","workspace_id"],"msg":"Input should be a valid string","input":true}]}`},
		{name: "storage_gb below 5", body: `{"session_id":"s","config":{"storage_gb":4}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"greater_than_equal","loc":["body","config","storage_gb"],"msg":"Input should be greater than or equal to 5","input":4,"ctx":{"ge":5}}]}`},
		{name: "storage_gb above 500", body: `{"session_id":"s","config":{"storage_gb":501}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"less_than_equal","loc":["body","config","storage_gb"],"msg":"Input should be less than or equal to 500","input":501,"ctx":{"le":500}}]}`},
		{name: "timeout_hours 0 and 169", body: `{"session_id":"s","config":{"timeout_hours":0}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"greater_than_equal","loc":["body","config","timeout_hours"],"msg":"Input should be greater than or equal to 1","input":0,"ctx":{"ge":1}}]}`},
		{name: "timeout_hours 169", body: `{"session_id":"s","config":{"timeout_hours":169}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"less_than_equal","loc":["body","config","timeout_hours"],"msg":"Input should be less than or equal to 168","input":169,"ctx":{"le":168}}]}`},
		{name: "storage_gb fraction", body: `{"session_id":"s","config":{"storage_gb":20.5}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"int_from_float","loc":["body","config","storage_gb"],"msg":"Input should be a valid integer, got a number with a fractional part","input":20.5}]}`},
		{name: "storage_gb huge", body: `{"session_id":"s","config":{"storage_gb":100000000000000000000000}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"less_than_equal","loc":["body","config","storage_gb"],"msg":"Input should be less than or equal to 500","input":100000000000000000000000,"ctx":{"le":500}}]}`},
		{name: "storage_gb null", body: `{"session_id":"s","config":{"storage_gb":null}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"int_type","loc":["body","config","storage_gb"],"msg":"Input should be a valid integer","input":null}]}`},
		{name: "config not an object", body: `{"session_id":"s","config":"x"}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"model_attributes_type","loc":["body","config"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"x"}]}`},
		{name: "wrong types inside config, in field order", body: `{"config":{"tier":null,"repos":"r","environment":{"A":1,"B":"ok"},"apt_packages":[1],"git_branch":2}}`,
			wantStatus: 422, wantBody: `{"detail":[
				{"type":"missing","loc":["body","session_id"],"msg":"Field required","input":{"config":{"tier":null,"repos":"r","environment":{"A":1,"B":"ok"},"apt_packages":[1],"git_branch":2}}},
				{"type":"string_type","loc":["body","config","tier"],"msg":"Input should be a valid string","input":null},
				{"type":"string_type","loc":["body","config","apt_packages",0],"msg":"Input should be a valid string","input":1},
				{"type":"list_type","loc":["body","config","repos"],"msg":"Input should be a valid list","input":"r"},
				{"type":"string_type","loc":["body","config","git_branch"],"msg":"Input should be a valid string","input":2},
				{"type":"string_type","loc":["body","config","environment","A"],"msg":"Input should be a valid string","input":1}]}`},
		{name: "environment not a dict", body: `{"session_id":"s","config":{"environment":["A"]}}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"dict_type","loc":["body","config","environment"],"msg":"Input should be a valid dictionary","input":["A"]}]}`},

		// 400s: the id is validated at create (§15).
		{name: "unsafe workspace_id", body: `{"session_id":"s","workspace_id":"a.b"}`, wantStatus: 400,
			wantBody: detail("Invalid workspace_id: contains unsafe characters")},
		{name: "workspace_id with a slash", body: `{"session_id":"s","workspace_id":"../etc"}`, wantStatus: 400,
			wantBody: detail("Invalid workspace_id: contains unsafe characters")},
		{name: "workspace_id too long", body: `{"session_id":"s","workspace_id":"` + strings.Repeat("a", 65) + `"}`, wantStatus: 400,
			wantBody: detail("Invalid workspace_id: longer than 64 characters")},

		// Orchestrator errors.
		{name: "no servers", body: `{"session_id":"s1"}`, createErr: orchestrator.ErrNoServers,
			wantStatus: 503, wantBody: detail("No servers available for workspace creation"), wantReq: defaultCreate()},
		{name: "placement: no room anywhere", body: `{"session_id":"s1"}`,
			createErr:  &orchestrator.PlacementError{Cause: placement.ErrNoCapacity, Summary: "insufficient memory on 2 servers"},
			wantStatus: 503, wantBody: detail("No server has sufficient resources"), wantReq: defaultCreate()},
		{name: "placement: no room in the region, wrapped again", body: `{"session_id":"s1"}`,
			createErr: fmt.Errorf("create w: %w", &orchestrator.PlacementError{Cause: &placement.RegionError{Region: "eu"},
				Region: "eu", Summary: "region mismatch on 1 server"}),
			wantStatus: 503, wantBody: detail("No capacity available in eu region"), wantReq: defaultCreate()},
		{name: "placement: no healthy servers", body: `{"session_id":"s1"}`,
			createErr:  &orchestrator.PlacementError{Cause: placement.ErrNoHealthyServers, Summary: "unhealthy on 3 servers"},
			wantStatus: 503, wantBody: detail("No healthy servers available"), wantReq: defaultCreate()},
		{name: "image missing", body: `{"session_id":"s1"}`,
			createErr:  fmt.Errorf("launch: %w", &orchestrator.ImageMissingError{Image: "berth/workspace:dev", ServerID: "ws-1"}),
			wantStatus: 503,
			wantBody:   detail("Workspace image 'berth/workspace:dev' not found on server 'ws-1'. Run 'make load-workspace-images-dind' to load workspace images into the development servers."),
			wantReq:    defaultCreate()},
		{name: "create failed", body: `{"session_id":"s1"}`,
			createErr:  fmt.Errorf("%w (%v)", orchestrator.ErrCreateFailed, errors.New("agent: name conflict")),
			wantStatus: 503, wantBody: detail("Container creation returned no container ID"), wantReq: defaultCreate()},
		{name: "start failed", body: `{"session_id":"s1"}`,
			createErr:  fmt.Errorf("%w (%v)", orchestrator.ErrStartFailed, errors.New("exit 1")),
			wantStatus: 503, wantBody: detail("Container created but failed to start. Check container logs for details."), wantReq: defaultCreate()},
		{name: "anything else: no internal text", body: `{"session_id":"s1"}`, createErr: fmt.Errorf("reserve: %w", errors.New("disk I/O error")),
			wantStatus: 500, wantBody: detail("Failed to create workspace: internal error"), wantReq: defaultCreate()},
		{name: "reserved environment variable", body: `{"session_id":"s1"}`,
			createErr:  &orchestrator.EnvError{Key: "USER_ID"},
			wantStatus: 400, wantBody: detail("Invalid environment: USER_ID is reserved and set by the platform"), wantReq: defaultCreate()},
		{name: "gpu variable off a gpu tier", body: `{"session_id":"s1"}`,
			createErr:  &orchestrator.EnvError{Key: "NVIDIA_VISIBLE_DEVICES", GPU: true},
			wantStatus: 400, wantBody: detail("Invalid environment: NVIDIA_VISIBLE_DEVICES is only allowed on GPU tiers"), wantReq: defaultCreate()},
		{name: "home on a server that is down", body: `{"session_id":"s1"}`,
			createErr:  &orchestrator.HomeUnavailableError{ServerID: "ws-2", Cause: errors.New("server is unreachable")},
			wantStatus: 503, wantBody: detail("Workspace home directory is on server 'ws-2', which is not reachable; it starts when the server is back (or after an operator removes the server, with an empty home)"),
			wantReq: defaultCreate()},
		{name: "the agent's text never reaches the caller", body: `{"session_id":"s1"}`,
			createErr:  fmt.Errorf("launch: %w", &agentclient.Error{Status: 502, Code: wire.CodeDocker, Message: "dockerd: /var/lib/docker: no space"}),
			wantStatus: 500, wantBody: detail("Failed to create workspace: the container runtime on the workspace's server failed"),
			wantReq: defaultCreate()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob := aliceWS()
			bob.ID, bob.UserID = "bobs", "bob"
			f := newFake(aliceWS(), bob)
			f.createErr = tt.createErr
			rec := req{method: "POST", path: "/workspaces", body: tt.body}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			var want []orchestrator.CreateRequest
			if tt.wantReq != nil {
				want = append(want, *tt.wantReq)
			}
			if diff := cmp.Diff(want, f.creates); diff != "" {
				t.Errorf("create requests (-want +got):\n%s", diff)
			}
		})
	}
}

func defaultCreate() *orchestrator.CreateRequest {
	return &orchestrator.CreateRequest{UserID: "alice", SessionID: "s1",
		Config: orchestrator.WorkspaceConfig{Tier: "starter_arm"}}
}

func TestGetAndList(t *testing.T) {
	bob := aliceWS()
	bob.ID, bob.UserID = "bobs", "bob"
	other := aliceWS()
	other.ID, other.SessionID, other.ServerID, other.ContainerID, other.Image = "ws2", "sess-2", "", "", ""
	other.Environment = nil
	const otherJSON = `{"id":"ws2","user_id":"alice","session_id":"sess-2","status":"running","tier":"starter",
		"host":"host-a","port":8080,"server_id":null,"container_id":null,"repos":[],
		"created_at":"2026-01-05T10:11:12.345678Z","last_activity":"2026-01-05T11:00:00Z",
		"metadata":{"stale_discovery":true},"auth_token":null,"image":null,
		"repositories":["https://github.com/a/b"],"environment":{}}`
	tests := []struct {
		name       string
		path       string
		syncStatus fleet.Status
		syncErr    error
		wantStatus int
		wantBody   string
		wantList   [][2]string
	}{
		{name: "get", path: "/workspaces/ws1", wantStatus: 200, wantBody: aliceJSON},
		{name: "get reports the synced status", path: "/workspaces/ws1", syncStatus: fleet.StatusStopped, wantStatus: 200,
			wantBody: strings.Replace(aliceJSON, `"status":"running"`, `"status":"stopped"`, 1)},
		{name: "a failed sync answers from the record", path: "/workspaces/ws1", syncErr: errors.New("agent down"),
			wantStatus: 200, wantBody: aliceJSON},
		{name: "record gone during sync", path: "/workspaces/ws1", syncErr: orchestrator.ErrNotFound,
			wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "nulls for empty server, container, image", path: "/workspaces/ws2", wantStatus: 200, wantBody: otherJSON},
		{name: "list: the caller's only", path: "/workspaces", wantStatus: 200,
			wantBody: "[" + aliceJSON + "," + otherJSON + "]", wantList: [][2]string{{"alice", ""}}},
		{name: "list by session", path: "/workspaces?session_id=sess-2", wantStatus: 200,
			wantBody: "[" + otherJSON + "]", wantList: [][2]string{{"alice", "sess-2"}}},
		{name: "list empty", path: "/workspaces?session_id=none", wantStatus: 200,
			wantBody: "[]", wantList: [][2]string{{"alice", "none"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS(), bob, other)
			f.syncStatus, f.syncErr = tt.syncStatus, tt.syncErr
			rec := req{method: "GET", path: tt.path}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			if diff := cmp.Diff(tt.wantList, f.lists); diff != "" {
				t.Errorf("list calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name       string
		method     string
		path       string
		opErr      map[string]error
		wantStatus int
		wantBody   string
		wantCalls  []string
	}{
		{name: "stop", method: "POST", path: "/workspaces/ws1/stop", wantStatus: 204, wantCalls: []string{"Stop ws1"}},
		{name: "stop failure is still 204", method: "POST", path: "/workspaces/ws1/stop",
			opErr: map[string]error{"Stop": boom}, wantStatus: 204, wantCalls: []string{"Stop ws1"}},
		{name: "stop unknown", method: "POST", path: "/workspaces/nope/stop", wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "restart", method: "POST", path: "/workspaces/ws1/restart", wantStatus: 204, wantCalls: []string{"Restart ws1"}},
		{name: "restart without container", method: "POST", path: "/workspaces/ws1/restart",
			opErr: map[string]error{"Restart": orchestrator.ErrNoContainer}, wantStatus: 404,
			wantBody: detail("Workspace has no assigned server or container"), wantCalls: []string{"Restart ws1"}},
		{name: "restart failure", method: "POST", path: "/workspaces/ws1/restart",
			opErr: map[string]error{"Restart": boom}, wantStatus: 404,
			wantBody: detail("Failed to start workspace: internal error"), wantCalls: []string{"Restart ws1"}},
		{name: "delete", method: "DELETE", path: "/workspaces/ws1", wantStatus: 204, wantCalls: []string{"Delete ws1"}},
		{name: "delete failure", method: "DELETE", path: "/workspaces/ws1", opErr: map[string]error{"Delete": boom},
			wantStatus: 500, wantBody: detail("Failed to delete workspace: internal error"), wantCalls: []string{"Delete ws1"}},
		{name: "mark for deletion", method: "POST", path: "/workspaces/ws1/mark-for-deletion", wantStatus: 202,
			wantBody: `{"status":"marked_for_deletion","workspace_id":"ws1"}`, wantCalls: []string{"MarkForDeletion ws1"}},
		{name: "restart with the home on a server that is down", method: "POST", path: "/workspaces/ws1/restart",
			opErr: map[string]error{"Restart": &orchestrator.HomeUnavailableError{ServerID: "ws-2", Cause: boom}}, wantStatus: 404,
			wantBody:  detail("Failed to start workspace: Workspace home directory is on server 'ws-2', which is not reachable; it starts when the server is back (or after an operator removes the server, with an empty home)"),
			wantCalls: []string{"Restart ws1"}},
		{name: "mark for deletion of a deleted workspace's home", method: "POST", path: "/workspaces/gone/mark-for-deletion",
			opErr: map[string]error{"MarkHomeForDeletion": nil}, wantStatus: 202,
			wantBody: `{"status":"marked_for_deletion","workspace_id":"gone"}`},
		{name: "mark for deletion of an unknown id", method: "POST", path: "/workspaces/gone/mark-for-deletion",
			wantStatus: 404, wantBody: detail("Workspace not found")},
		{name: "mark for deletion, record vanished", method: "POST", path: "/workspaces/ws1/mark-for-deletion",
			opErr: map[string]error{"MarkForDeletion": orchestrator.ErrNotFound}, wantStatus: 404,
			wantBody: detail("Workspace not found"), wantCalls: []string{"MarkForDeletion ws1"}},
		{name: "heartbeat", method: "POST", path: "/workspaces/ws1/heartbeat", wantStatus: 204, wantCalls: []string{"Heartbeat ws1"}},
		{name: "heartbeat, record vanished", method: "POST", path: "/workspaces/ws1/heartbeat",
			opErr: map[string]error{"Heartbeat": orchestrator.ErrNotFound}, wantStatus: 404,
			wantBody: detail("Workspace not found"), wantCalls: []string{"Heartbeat ws1"}},
		{name: "heartbeat failure", method: "POST", path: "/workspaces/ws1/heartbeat",
			opErr: map[string]error{"Heartbeat": boom}, wantStatus: 500,
			wantBody: detail("Internal Server Error"), wantCalls: []string{"Heartbeat ws1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			if tt.opErr != nil {
				f.opErr = tt.opErr
			}
			rec := req{method: tt.method, path: tt.path}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			if diff := cmp.Diff(tt.wantCalls, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRestartFailures(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"no container", orchestrator.ErrNoContainer, 404, detail("Workspace has no assigned server or container")},
		{"no container, wrapped", fmt.Errorf("restart ws1: %w", orchestrator.ErrNoContainer), 404,
			detail("Workspace has no assigned server or container")},
		{"no servers", orchestrator.ErrNoServers, 404,
			detail("Failed to start workspace: No servers available for workspace creation")},
		{"no room in the region", &orchestrator.PlacementError{Cause: &placement.RegionError{Region: "eu"}, Region: "eu"}, 404,
			detail("Failed to start workspace: No capacity available in eu region")},
		{"no healthy servers", fmt.Errorf("move: %w", &orchestrator.PlacementError{Cause: placement.ErrNoHealthyServers}), 404,
			detail("Failed to start workspace: No healthy servers available")},
		{"no room", &orchestrator.PlacementError{Cause: placement.ErrNoCapacity}, 404,
			detail("Failed to start workspace: No server has sufficient resources")},
		{"image missing", &orchestrator.ImageMissingError{Image: "berth/workspace:dev", ServerID: "ws-1"}, 404,
			detail("Failed to start workspace: Workspace image 'berth/workspace:dev' not found on server 'ws-1'. Run 'make load-workspace-images-dind' to load workspace images into the development servers.")},
		{"a start failure, in stable words", fmt.Errorf("start: %w", orchestrator.ErrStartFailed), 404,
			detail("Failed to start workspace: the container was created but did not start")},
		{"an agent failure, without its text", fmt.Errorf("start: %w", &agentclient.Error{Status: 504, Code: wire.CodeTimeout, Message: "POST /v1/containers/abc/start: context deadline exceeded"}), 404,
			detail("Failed to start workspace: the operation timed out")},
		{"an unreachable agent", fmt.Errorf("%w: %w", orchestrator.ErrServerUnavailable, agentclient.ErrUnreachable), 404,
			detail("Failed to start workspace: the workspace's server is not available")},
		{"record gone", orchestrator.ErrNotFound, 404, detail("Workspace not found")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.opErr = map[string]error{"Restart": tt.err}
			rec := req{method: "POST", path: "/workspaces/ws1/restart"}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			if diff := cmp.Diff([]string{"Restart ws1"}, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkspaceHealth(t *testing.T) {
	ok := func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		return orchestrator.ExecResult{Stdout: []byte("healthy\n")}, nil
	}
	tests := []struct {
		name       string
		syncStatus fleet.Status
		execFn     func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)
		goneAfter  string
		wantBody   string
		wantExecs  int
	}{
		{name: "healthy", execFn: ok, wantBody: `{"healthy":true,"status":"running"}`, wantExecs: 1},
		{name: "probe fails", execFn: func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{}, orchestrator.ErrServerUnavailable
		}, wantBody: `{"healthy":false,"status":"running"}`, wantExecs: 1},
		{name: "probe exits non-zero", execFn: func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{ExitCode: 1, Stdout: []byte("healthy")}, nil
		}, wantBody: `{"healthy":false,"status":"running"}`, wantExecs: 1},
		{name: "not running: no probe", syncStatus: fleet.StatusStopped, execFn: ok,
			wantBody: `{"healthy":false,"status":"stopped"}`},
		{name: "record gone after the probe", execFn: ok, goneAfter: "Exec",
			wantBody: `{"healthy":true,"status":"unknown"}`, wantExecs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.syncStatus, f.execFn, f.goneAfter = tt.syncStatus, tt.execFn, tt.goneAfter
			rec := req{method: "GET", path: "/workspaces/ws1/health"}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, 200, tt.wantBody)
			if got := len(f.execs); got != tt.wantExecs {
				t.Fatalf("execs: got %d, want %d", got, tt.wantExecs)
			}
			if tt.wantExecs > 0 {
				want := orchestrator.ExecRequest{Command: "echo healthy", WorkingDir: "/home/dev", Timeout: 10e9, User: "dev"}
				if diff := cmp.Diff(want, f.execs[0]); diff != "" {
					t.Errorf("probe (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		name     string
		stats    wire.ContainerStats
		err      error
		wantBody string // exact bytes: field order and float format matter
	}{
		{name: "sample", stats: wire.ContainerStats{CPUPercent: 12.5, CPULimitCores: 2, MemoryUsedMB: 300, MemoryLimitMB: 4096,
			MemoryPercent: 7.32421875, DiskReadMB: 1, DiskWriteMB: 0.5, NetworkRxMB: 0, NetworkTxMB: 1e-7,
			UptimeSeconds: 42, CollectedAt: t0},
			wantBody: `{"cpu_percent":12.5,"cpu_limit_cores":2.0,"memory_used_mb":300,"memory_limit_mb":4096,"memory_percent":7.32421875,` +
				`"disk_read_mb":1.0,"disk_write_mb":0.5,"network_rx_mb":0.0,"network_tx_mb":1e-07,` +
				`"collected_at":"2026-01-05T10:11:12.345678Z","container_uptime_seconds":42}`},
		{name: "no sample: the defaults", err: orchestrator.ErrNoContainer,
			wantBody: `{"cpu_percent":0.0,"cpu_limit_cores":1.0,"memory_used_mb":0,"memory_limit_mb":1024,"memory_percent":0.0,` +
				`"disk_read_mb":0.0,"disk_write_mb":0.0,"network_rx_mb":0.0,"network_tx_mb":0.0,"collected_at":null,"container_uptime_seconds":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.stats, f.statsErr = tt.stats, tt.err
			rec := req{method: "GET", path: "/workspaces/ws1/resources"}.send(newTestEcho(f, testToken))
			if rec.Code != http.StatusOK {
				t.Errorf("status: got %d, want 200", rec.Code)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body:\ngot  %s\nwant %s", got, tt.wantBody)
			}
		})
	}
}

func TestRequestBodies(t *testing.T) {
	tests := []struct {
		name       string
		req        req
		wantStatus int
		wantBody   string
	}{
		{"truncated JSON fails at its end",
			req{method: "POST", path: "/workspaces", body: `{"session_id":`},
			422, `{"detail":[{"type":"json_invalid","loc":["body",14],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`},
		{"whitespace only",
			req{method: "POST", path: "/workspaces", body: "  "},
			422, `{"detail":[{"type":"json_invalid","loc":["body",2],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`},
		{"trailing data",
			req{method: "POST", path: "/workspaces", body: `{"session_id":"s"} x`},
			422, `{"detail":[{"type":"json_invalid","loc":["body",19],"msg":"JSON decode error","input":{},"ctx":{"error":"Extra data"}}]}`},
		{"a body that is not JSON is checked after auth",
			req{method: "POST", path: "/workspaces", body: "hello", header: map[string]string{"Content-Type": "text/plain", headerServiceToken: ""}},
			401, detail("Missing service token")},
		{"a body that is not JSON is not a model",
			req{method: "POST", path: "/workspaces", body: "hello", header: map[string]string{"Content-Type": "text/plain"}},
			422, `{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"hello"}]}`},
		{"JSON without a content type",
			req{method: "POST", path: "/workspaces", body: `{"session_id":"s1"}`, header: map[string]string{"Content-Type": ""}},
			201, createdJSON},
		{"+json content type",
			req{method: "POST", path: "/workspaces/ws1/exec", body: `{"command":1}`, header: map[string]string{"Content-Type": "application/vnd.x+json; charset=utf-8"}},
			422, `{"detail":[{"type":"string_type","loc":["body","command"],"msg":"Input should be a valid string","input":1}]}`},
		{"the body is ignored where the route takes none",
			req{method: "POST", path: "/workspaces/ws1/heartbeat", body: `{not json`},
			204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.req.send(newTestEcho(newFake(aliceWS()), testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
		})
	}
}

func TestHeadIsServedWhereGetIs(t *testing.T) {
	e := newTestEcho(newFake(aliceWS()), testToken)
	srv := httptest.NewServer(e)
	defer srv.Close()
	for _, path := range []string{"/health", "/ready"} {
		t.Run(path, func(t *testing.T) {
			resp, err := srv.Client().Head(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("HEAD %s: got %d, want 200", path, resp.StatusCode)
			}
		})
	}
}
