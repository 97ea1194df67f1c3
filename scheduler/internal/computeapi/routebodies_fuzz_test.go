package computeapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// bodyRoutes are the compute routes that take a JSON body.
var bodyRoutes = []struct{ method, path string }{
	{http.MethodPost, "/workspaces"},
	{http.MethodPost, "/workspaces/ws1/exec"},
	{http.MethodPost, "/workspaces/ws1/exec-stream"},
	{http.MethodPost, "/workspaces/ws1/scale"},
	{http.MethodPost, "/workspaces/ws1/tunnels/start"},
	{http.MethodPost, "/workspaces/ws1/tunnels/stop"},
	{http.MethodPut, "/workspaces/ws1/files/content"},
}

// FuzzRouteBodies sends any body to each body route through the real
// router, guard and handlers (over the fake Workspaces, which never
// fails), as alice with the right token. Properties:
//   - the answer is a documented one: 2xx, or 400, 413, 422, or the
//     route's own failure in the contract's words (a file write's 404
//     "Failed to write file: …", a tunnel start's 500 "Failed to start
//     tunnel: …", which a NUL byte in the token gets); never a panic;
//   - every error answer is JSON {"detail": …}, a 422's detail a list of
//     located entries;
//   - what an accepted body asked for is what reached the workspace: the
//     exec's command, the scale's tier, the tunnel token on the exec's
//     stdin, the created session;
//   - the request costs at most allocBound of the body.
func FuzzRouteBodies(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"session_id":"s","config":{"tier":"starter","storage_gb":1e640000000}}`},
		{0, `{"session_id":"s","workspace_id":"../etc"}`},
		{1, `{"command":"echo hi","timeout":1e640000000}`},
		{1, `{"command":"ls","working_dir":"/tmp","timeout":"-5"}`},
		{2, `{"command":"cat /dev/zero","timeout":0.5}`},
		{3, `{"new_tier":"pro"}`},
		{3, `{"new_tier":["pro"]}`},
		{4, `{"token":"eyJ\u0000","port":8080,"service_type":"ssh"}`},
		{4, `{"token":"t","port":65536,"service_type":"ftp"}`},
		{5, `{"port":"80"}`},
		{5, `{"port":1e640000000}`},
		{6, `{"path":"../../etc/passwd","content":"x"}`},
		{6, `{"path":"a\u0000b","content":"x"}`},
		{6, `{"path":"a","content":"` + strings.Repeat(`\u0000`, 64) + `"}`},
		{1, `[` + strings.Repeat(`{},`, 1000) + `{}]`},
		{3, strings.Repeat(`[`, 10000)},
	} {
		f.Add(s.route, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		fake := newFake(aliceWS())
		e := newTestEcho(fake, testToken)
		r := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		r.Header.Set(headerUserID, "alice")
		r.Header.Set(headerServiceToken, testToken)
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		measure(func() { e.ServeHTTP(rec, r) }).Within(t, rt.method+" "+rt.path, allocBound(len(body)))

		if rec.Code >= 200 && rec.Code < 300 {
			checkReachedWorkspace(t, rt.path, body, fake)
			return
		}
		var ans struct {
			Detail json.RawMessage `json:"detail"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || len(ans.Detail) == 0 {
			t.Fatalf("error answer %q: want JSON {\"detail\": …} (%v)", rec.Body.Bytes(), err)
		}
		if !slices.Contains([]int{400, 413, 422}, rec.Code) && !routeFailure(rt.path, rec.Code, ans.Detail) {
			t.Fatalf("%s %s: status %d (%s), want 2xx, 400, 413, 422 or the route's documented failure",
				rt.method, rt.path, rec.Code, rec.Body.Bytes())
		}
		if rec.Code == http.StatusUnprocessableEntity {
			var entries []struct {
				Type string `json:"type"`
				Msg  string `json:"msg"`
				Loc  []any  `json:"loc"`
			}
			if err := json.Unmarshal(ans.Detail, &entries); err != nil || len(entries) == 0 {
				t.Fatalf("422 detail %s: want a list of entries (%v)", ans.Detail, err)
			}
			for _, en := range entries {
				if en.Type == "" || en.Msg == "" || len(en.Loc) == 0 || en.Loc[0] != "body" {
					t.Fatalf("422 entry %+v: want a type, a message and a location in the body", en)
				}
			}
		}
	})
}

// checkReachedWorkspace checks that an accepted body's request is what the
// workspace got.
func checkReachedWorkspace(t *testing.T, path string, body []byte, fake *fakeWorkspaces) {
	t.Helper()
	v, err := decodeNumbers(body)
	obj, _ := v.(map[string]any)
	if err != nil || obj == nil {
		t.Fatalf("accepted a body that is no JSON object: %q", body)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	switch {
	case path == "/workspaces":
		if len(fake.creates) != 1 || fake.creates[0].SessionID != obj["session_id"] || fake.creates[0].UserID != "alice" {
			t.Fatalf("creates %+v, want one for session %v of alice", fake.creates, obj["session_id"])
		}
	case strings.HasSuffix(path, "/exec"), strings.HasSuffix(path, "/exec-stream"):
		if len(fake.execs) != 1 || fake.execs[0].Command != obj["command"] || fake.execs[0].Timeout < 0 {
			t.Fatalf("execs %+v, want one of %q", fake.execs, obj["command"])
		}
	case strings.HasSuffix(path, "/scale"):
		if !slices.Equal(fake.scales, []string{obj["new_tier"].(string)}) {
			t.Fatalf("scales %v, want %v", fake.scales, obj["new_tier"])
		}
	case strings.HasSuffix(path, "/tunnels/start"):
		token, _ := obj["token"].(string)
		if len(fake.execs) != 1 || string(fake.execs[0].Stdin) != token {
			t.Fatalf("tunnel start execs %+v: want the token on stdin only", fake.execs)
		}
	case strings.HasSuffix(path, "/files/content"):
		if len(fake.raws) != 1 || fake.raws[0].Stdin != obj["content"] {
			t.Fatalf("file write raws %+v, want the content %q", fake.raws, obj["content"])
		}
	}
}

// routeFailure reports whether an answer is the contract's failure answer
// of the route (§3.13 file write: 404; §3.19 tunnel start: 500).
func routeFailure(path string, status int, detail json.RawMessage) bool {
	var d string
	_ = json.Unmarshal(detail, &d)
	switch {
	case strings.HasSuffix(path, "/files/content"):
		return status == http.StatusNotFound && strings.HasPrefix(d, "Failed to write file: ")
	case strings.HasSuffix(path, "/tunnels/start"):
		return status == http.StatusInternalServerError && strings.HasPrefix(d, "Failed to start tunnel: ")
	}
	return false
}
