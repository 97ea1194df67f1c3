package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"berth/agent/internal/docker/dockerfake"
	"berth/agent/internal/server"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// agentBodyRoutes are the agent routes with a JSON body; {id} is an
// existing container's id.
var agentBodyRoutes = []string{
	wire.PathContainers,
	wire.PathContainers + "/{id}/stop",
	wire.PathContainers + "/{id}/exec",
	wire.PathContainers + "/{id}/update",
	wire.PathImagePull,
	wire.PathHomeExports,
	wire.PathHomeImports,
}

// FuzzAgentBodies sends any body to each of the agent's body routes
// through its real handler (over the in-memory Docker), as the scheduler.
// Properties:
//   - no 5xx but the homes routes' 501 (not enabled here); no panic;
//   - every error answer is a wire.Error with a code and a message;
//   - a container the create accepted breaks none of the agent's rules,
//     checked here on the request as sent: not privileged, no host or
//     container namespace, every mount source strictly below the data
//     directory, berth's labels on it;
//   - a request costs at most testutil.AllocBound of its body.
func FuzzAgentBodies(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"name":"ws-a","image":"berth/workspace:dev","start":true,"mounts":[{"source":"homes/a","target":"/home/dev"}],"resources":{"cpu":1,"memory_mb":512}}`},
		{0, `{"name":"x","image":"i","privileged":true}`},
		{0, `{"name":"x","image":"i","network_mode":" HOST "}`},
		{0, `{"name":"x","image":"i","pid_mode":"container:abc"}`},
		{0, `{"name":"x","image":"i","mounts":[{"source":"../../etc","target":"/etc"}]}`},
		{0, `{"name":"x","image":"i","mounts":[{"source":"/var/lib/berth","target":"/x"}]}`},
		{0, `{"name":"x","image":"i","mounts":[{"source":"/var/lib/berth-evil/a","target":"/x"}]}`},
		{0, `{"name":"x","image":"i","mounts":[{"source":"a\u0000b","target":"rel"}]}`},
		{0, `{"name":"x","image":"i","resources":{"cpu":1e308,"memory_mb":9223372036854775807}}`},
		{0, `{"name":"x","image":"i","resources":{"cpu":1e640000000}}`},
		{0, `{"name":"x","image":"i","labels":{"berth.managed":"false","berth.server_id":"evil"}}`},
		{0, `{"name":"x","image":"i","gpu":{"count":-2,"capabilities":[]}}`},
		{1, `{"timeout_seconds":-1}`},
		{2, `{"cmd":["id"],"user":"root","timeout_seconds":-5}`},
		{2, `{"cmd":[]}`},
		{3, `{"cpu":-1,"memory_mb":-1}`},
		{3, `{"cpu":"NaN"}`},
		{4, `{"image":"../../x","tag":"$(id)"}`},
		{5, `{"path":"../../etc","token":"t","ttl_seconds":1}`},
		{6, `{"path":"homes/a","source":"https://x","token":"t"}`},
		{0, strings.Repeat(`[`, 100000)},
	} {
		f.Add(s.route, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		fake := dockerfake.New("srv-1")
		ctr, err := fake.Create(context.Background(), wire.CreateContainerRequest{Name: "existing", Image: "img", Start: true})
		if err != nil {
			t.Fatal(err)
		}
		api := server.New("srv-1", fake, func() wire.Capacity { return testCapacity }, server.StreamConfig{}, hclog.NewNullLogger())
		path := strings.ReplaceAll(agentBodyRoutes[int(route)%len(agentBodyRoutes)], "{id}", ctr.ID)
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		testutil.Measure(func() { api.Handler().ServeHTTP(rec, r) }).Within(t, "POST "+path, testutil.AllocBound(len(body)))

		homesOff := rec.Code == http.StatusNotImplemented && strings.Contains(path, "/homes/")
		if rec.Code >= 500 && !homesOff {
			t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			var we wire.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &we); err != nil || we.Code == "" || we.Message == "" {
				t.Fatalf("POST %s: error answer %d %q is not a wire.Error (%v)", path, rec.Code, rec.Body.Bytes(), err)
			}
			return
		}
		if path == wire.PathContainers && rec.Code == http.StatusCreated {
			var req wire.CreateContainerRequest
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("accepted a body encoding/json refuses: %v", err)
			}
			checkCreateSafe(t, req)
			var got wire.Container
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Labels[wire.LabelManaged] != "true" ||
				got.Labels[wire.LabelServerID] != "srv-1" {
				t.Fatalf("created %s (%v): want berth's labels", rec.Body.Bytes(), err)
			}
		}
	})
}

// checkCreateSafe checks an accepted create request against the agent's
// rules, independently of how docker.ValidateCreate words them.
func checkCreateSafe(t *testing.T, req wire.CreateContainerRequest) {
	t.Helper()
	if req.Privileged {
		t.Fatal("accepted a privileged container")
	}
	for _, mode := range []string{req.NetworkMode, req.PidMode, req.IpcMode} {
		m := strings.ToLower(strings.TrimSpace(mode))
		if m == "host" || strings.HasPrefix(m, "container:") {
			t.Fatalf("accepted namespace mode %q", mode)
		}
	}
	for _, m := range req.Mounts {
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(dockerfake.DataDir, src)
		}
		rel, err := filepath.Rel(dockerfake.DataDir, filepath.Clean(src))
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			t.Fatalf("accepted mount source %q (%q relative to the data directory)", m.Source, rel)
		}
		if !strings.HasPrefix(m.Target, "/") {
			t.Fatalf("accepted mount target %q", m.Target)
		}
	}
	if req.Resources.CPU < 0 || req.Resources.MemoryMB < 0 {
		t.Fatalf("accepted resources %+v", req.Resources)
	}
}
