package computeapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzListQuery fuzzes the query of GET /workspaces (workspaces.go, list)
// with any raw query string. Properties: the answer is a 200 JSON list;
// the registry is asked for alice's workspaces of the query's last
// session_id value ("" when none), never anyone else's.
func FuzzListQuery(f *testing.F) {
	for _, q := range []string{
		"session_id=sess-1", "session_id=a&session_id=b", "session_id=%00", "session_id=%zz&session_id=x",
		"session_id", "user_id=bob", "session_id=%27%20OR%201%3D1--", ";;;", "session_id=%E2%80%A8",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		u := &url.URL{Path: "/workspaces", RawQuery: rawQuery}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL, r.RequestURI = u, u.RequestURI()
		r.Header.Set(headerUserID, "alice")
		r.Header.Set(headerServiceToken, testToken)
		fake := newFake(aliceWS())
		rec := httptest.NewRecorder()
		newTestEcho(fake, testToken).ServeHTTP(rec, r)
		var list []map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
			t.Fatalf("?%s: %d %s, want a 200 JSON list", rawQuery, rec.Code, rec.Body.Bytes())
		}
		want := ""
		if vals := u.Query()["session_id"]; len(vals) > 0 {
			want = vals[len(vals)-1]
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if len(fake.lists) != 1 || fake.lists[0] != [2]string{"alice", want} {
			t.Fatalf("?%s: listed %v, want alice's of session %q", rawQuery, fake.lists, want)
		}
		for _, w := range list {
			if w["user_id"] != "alice" {
				t.Fatalf("answer holds %v", w)
			}
		}
	})
}
