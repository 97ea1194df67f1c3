package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
)

// FuzzServerBodies fuzzes the admin API's JSON bodies (servers.go,
// decodeBody; explain.go): POST /admin/servers (strict, then newServer),
// PATCH /admin/servers/{id} (strict, then registryPatch) and POST
// /admin/placements/explain (lenient). Properties:
//   - every refusal is ErrInvalid (a 400) with a message, never a 500;
//   - an accepted body round-trips: marshalled and decoded again it is
//     the same request;
//   - a server newServer accepts is within its rules: an id of the agent's
//     pattern, a port 1..65535, an address without port, scheme or blank,
//     no negative capacity, a valid state;
//   - decoding costs at most testutil.AllocBound of the body.
func FuzzServerBodies(f *testing.F) {
	for _, s := range []struct {
		kind uint8
		body string
	}{
		{0, `{"id":"ws-1","ip_address":"10.0.0.5","agent_port":7443,"labels":{"gpu":"no"},"total_cpu":8,"state":"active"}`},
		{0, `{"id":"WS_1","ip_address":"http://10.0.0.5:7443/","agent_port":70000,"total_cpu":-1,"state":"gone"}`},
		{0, `{"id":"ws-1","ip_address":"h","agent_port":1e640000000}`},
		{0, `{"id":"ws-1","ip_address":"h","total_cpu":1e400}`},
		{0, `{"id":"ws-1","ip_address":"h","labels":{" ":"x","\u0000":"\u2028"}}`},
		{0, `{"id":"ws-1","ip_address":"h","priviledged":true}`},
		{0, `{"id":"` + strings.Repeat("a", 64) + `","ip_address":"::1"}`},
		{0, `{"id":"a..b","ip_address":"[::1]:7443"}`},
		{1, `{"state":"draining","labels":null,"total_cpu":0.5}`},
		{1, `{"max_workspaces":-1,"total_memory_mb":"1"}`},
		{1, `{"state":"../../etc"}`},
		{2, `{"tier":"pro","region_preference":"eu","extra":[1,2,3]}`},
		{2, `[]`}, {2, `null`}, {2, ``}, {0, `{} {}`}, {1, strings.Repeat(`{"a":`, 5000)},
	} {
		f.Add(s.kind, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		switch kind % 3 {
		case 0:
			var req CreateServerRequest
			if !decodeFuzzed(t, body, &req, true) {
				return
			}
			s, err := newServer(req)
			if err != nil {
				invalidOnly(t, err)
				return
			}
			checkNewServer(t, s)
		case 1:
			var p ServerPatch
			if !decodeFuzzed(t, body, &p, true) {
				return
			}
			if _, err := p.registryPatch(); err != nil {
				invalidOnly(t, err)
			}
		case 2:
			var req ExplainRequest
			decodeFuzzed(t, body, &req, false)
		}
	})
}

// decodeFuzzed runs decodeBody on body into v (a pointer to a request)
// and checks its answer; it reports whether the body was accepted.
func decodeFuzzed[T any](t *testing.T, body []byte, v *T, strict bool) bool {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/admin/servers", bytes.NewReader(body))
	c := echo.New().NewContext(r, httptest.NewRecorder())
	var err error
	testutil.Measure(func() { err = decodeBody(c, v, strict) }).Within(t, "decodeBody", testutil.AllocBound(len(body)))
	if err != nil {
		invalidOnly(t, err)
		return false
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted %+v does not marshal: %v", *v, err)
	}
	var again T
	if err := json.Unmarshal(raw, &again); err != nil {
		t.Fatalf("accepted %s does not decode again: %v", raw, err)
	}
	if diff := cmp.Diff(*v, again); diff != "" {
		t.Fatalf("round trip (-decoded +again):\n%s", diff)
	}
	return true
}

// invalidOnly checks that err is a 400 (ErrInvalid, or the registry's)
// with a message.
func invalidOnly(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, registry.ErrInvalid) || err.Error() == "" {
		t.Fatalf("refusal %v: want ErrInvalid with a message", err)
	}
}

// checkNewServer checks an accepted server against the rules, without
// newServer's code.
func checkNewServer(t *testing.T, s registry.Server) {
	t.Helper()
	if !serverIDPattern.MatchString(s.ID) || len(s.ID) > 63 {
		t.Fatalf("accepted id %q", s.ID)
	}
	if s.AgentPort < 1 || s.AgentPort > 65535 {
		t.Fatalf("accepted port %d", s.AgentPort)
	}
	if s.IPAddress == "" || strings.ContainsAny(s.IPAddress, " /") || strings.Count(s.IPAddress, ":") == 1 {
		t.Fatalf("accepted address %q", s.IPAddress)
	}
	if s.TotalCPU < 0 || s.TotalMemoryMB < 0 || s.TotalDiskGB < 0 || s.TotalBandwidthMbps < 0 || s.MaxWorkspaces < 0 || s.GPUCount < 0 {
		t.Fatalf("accepted negative capacity %+v", s)
	}
	if !s.State.Valid() {
		t.Fatalf("accepted state %q", s.State)
	}
}
