package computeapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/registry"
)

// recordingApps is the fake Workspaces with an app that records the
// request the preview proxy hands it.
type recordingApps struct {
	*fakeWorkspaces
	port int
	got  *http.Request
}

func (p *recordingApps) AppProxy(_ context.Context, _ registry.Workspace, port int, _ agentclient.ProxyOptions) (http.Handler, error) {
	p.port = port
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.got = r
		w.WriteHeader(http.StatusNoContent)
	}), nil
}

// FuzzPreviewPath fuzzes the paths of the preview proxy (proxy.go:
// /preview/{id}/proxy/{port}/{path} and /preview/{id}/app/{path}) with any
// id, port and rest of the path, through the real router. Properties:
//   - a port that is not all digits is the framework's 404; digits outside
//     1–65535 (overflow included) a 502 that reaches no app; no answer is
//     a 500;
//   - a prefix without its trailing slash is a 307 to the same path with
//     the slash, under /preview/ (no open redirect);
//   - the app gets exactly the part of the escaped path after the prefix
//     ("/" when none), its unescaped form consistent with it, the
//     original query, the port asked for, and never the service token.
func FuzzPreviewPath(f *testing.F) {
	for _, s := range []struct {
		id, port, rest string
		app            bool
	}{
		{"ws1", "3000", "index.html", false},
		{"ws1", "3000", "", false},
		{"ws1", "08080", "a/../../../etc/passwd", false},
		{"ws1", "99999999999999999999", "x", false},
		{"ws1", "0", "x", false},
		{"ws1", "80a", "x", false},
		{"ws1", "", "a%2Fb%00c?x=1&y=%zz", true},
		{"ws1", "", "//evil.example/", true},
		{"ws%2F1", "3000", "%E2%80%A8", false},
		{"nope", "3000", "x", false},
		{"ws1", "3000", "x;y=1#frag", false},
	} {
		f.Add(s.id, s.port, s.rest, s.app)
	}
	f.Fuzz(func(t *testing.T, id, port, rest string, app bool) {
		if id == "" || strings.ContainsAny(id+port, "/?#") {
			t.Skip("the id and the port are one path segment each")
		}
		prefix := "/preview/" + id + "/proxy/" + port
		if app {
			prefix = "/preview/" + id + "/app"
		}
		raw := prefix + "/" + rest
		if rest == "" && len(id)%2 == 0 { // also the bare prefix, which redirects
			raw = prefix
		}
		u, err := url.ParseRequestURI(raw)
		if err != nil || !strings.HasPrefix(u.EscapedPath(), prefix) {
			t.Skip("not a request line a server would pass on")
		}
		apps := &recordingApps{fakeWorkspaces: newFake(aliceWS())}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL, r.RequestURI = u, u.RequestURI()
		r.Header.Set(headerServiceToken, testToken)
		r.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		newTestEcho(apps, testToken).ServeHTTP(rec, r)

		if rec.Code >= 500 && rec.Code != http.StatusBadGateway || !slices.Contains([]int{204, 307, 404, 405, 502}, rec.Code) {
			t.Fatalf("%s: %d %s", raw, rec.Code, rec.Body.Bytes())
		}
		if rec.Code == http.StatusTemporaryRedirect {
			loc := rec.Header().Get("Location")
			lu, err := url.Parse(loc)
			if err != nil || !strings.HasPrefix(loc, "/preview/") || lu.Host != "" || lu.EscapedPath() != u.EscapedPath()+"/" {
				t.Fatalf("%s redirects to %q, want the path with a slash", raw, loc)
			}
			return
		}
		if apps.got == nil {
			if rec.Code == http.StatusNoContent {
				t.Fatalf("%s: 204 without reaching the app", raw)
			}
			return
		}
		got := apps.got
		if !app {
			n, err := strconv.Atoi(port)
			if err != nil || n != apps.port || !validPort(n) || strings.Trim(port, "0123456789") != "" {
				t.Fatalf("%s reached port %d", raw, apps.port)
			}
		}
		appPath := got.URL.EscapedPath()
		want := strings.TrimPrefix(u.EscapedPath(), prefix)
		if want == "" {
			want = "/"
		}
		if appPath != want {
			t.Fatalf("%s: the app got %q", raw, appPath)
		}
		if dec, err := url.PathUnescape(appPath); err == nil && dec != got.URL.Path {
			t.Fatalf("%s: the app's path %q and its escaped form %q differ", raw, got.URL.Path, appPath)
		}
		if got.URL.RawQuery != u.RawQuery {
			t.Fatalf("%s: the app got the query %q", raw, got.URL.RawQuery)
		}
		if strings.Contains(got.Header.Get("Authorization"), testToken) {
			t.Fatalf("%s: the service token reached the app", raw)
		}
	})
}
