package computeapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/orchestrator"
)

// FuzzDecodeCreate fuzzes the WorkspaceCreateRequest model (workspaces.go,
// decodeCreate) with any JSON body. Properties:
//   - a refusal is a 422 whose entries each have a type, a message and a
//     location in the body, and marshal;
//   - an accepted request is within the model's bounds (timeout_hours
//     1..168) and round-trips: the request written back as a body decodes
//     to the same request;
//   - validation costs at most allocBound of the body (no number is
//     expanded: {"config":{"storage_gb":1e640000000}}).
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		`{"session_id":"s"}`,
		`{"session_id":"s","workspace_id":"ws-1","config":{"tier":"pro","repos":["https://u:t@github.com/a/b"],
			"environment":{"A":"1","GITHUB_TOKEN":"x"},"timeout_hours":"12","storage_gb":20.0,"git_branch":null}}`,
		`{"session_id":"s","config":{"storage_gb":1e640000000,"timeout_hours":1e640000000}}`,
		`{"session_id":"s","config":{"storage_gb":-1e640000000,"timeout_hours":"99999999999999999999999"}}`,
		`{"session_id":"s","config":{"timeout_hours":1.5,"storage_gb":true}}`,
		`{"session_id":1,"workspace_id":[],"config":[]}`,
		`{"session_id":"s","config":{"environment":{"\u0000":"\u0000"},"repos":[null,1,{}]}}`,
		`{"session_id":"../../etc","workspace_id":"../../etc"}`,
		`[]`, `"x"`, `null`, `1e640000000`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeNumbers(data)
		if err != nil {
			t.Skip("not JSON: readBody's part")
		}
		var req createRequestOut
		measure(func() { req, err = decodeCreateOut(requestBody{present: true, isJSON: true, value: v}) }).
			Within(t, "decodeCreate", allocBound(len(data)))
		if err != nil {
			checkFieldErrors(t, refusal(t, err, http.StatusUnprocessableEntity), "body")
			return
		}
		if h := req.Config.Settings.IdleTimeoutHours; h != 0 && (h < 1 || h > 168) {
			t.Fatalf("accepted timeout_hours %d, want 1..168", h)
		}
		again, err := decodeCreateOut(requestBody{present: true, isJSON: true, value: createBodyOf(t, req)})
		if err != nil {
			t.Fatalf("the accepted request written back is refused: %v", err)
		}
		if diff := cmp.Diff(req, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the request (-first +again):\n%s", diff)
		}
	})
}

// createRequestOut is what decodeCreate returns.
type createRequestOut = orchestrator.CreateRequest

// decodeCreateOut is decodeCreate for one fixed user.
func decodeCreateOut(b requestBody) (createRequestOut, error) { return decodeCreate(b, "alice") }

// createBodyOf writes req back as a create body, decoded as readBody
// decodes (numbers as json.Number).
func createBodyOf(t *testing.T, req createRequestOut) any {
	t.Helper()
	cfg := map[string]any{
		"tier":       req.Config.Tier,
		"git_branch": req.Config.Settings.GitBranch, "git_credentials": req.Config.GitCredentials,
		"git_name": req.Config.Settings.GitName, "git_email": req.Config.Settings.GitEmail,
		"base_image": req.Config.Settings.BaseImage, "region_preference": req.Config.Settings.RegionPreference,
	}
	if req.Config.Repos != nil {
		cfg["repos"] = req.Config.Repos
	}
	if req.Config.Environment != nil {
		cfg["environment"] = req.Config.Environment
	}
	if h := req.Config.Settings.IdleTimeoutHours; h != 0 {
		cfg["timeout_hours"] = h
	}
	body := map[string]any{"session_id": req.SessionID, "config": cfg}
	if req.WorkspaceID != "" {
		body["workspace_id"] = req.WorkspaceID
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeNumbers(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
