package computeapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fileQueryRoutes are the file routes whose path comes in the query, and
// where their command names it: after this prefix, as one shell word.
var fileQueryRoutes = []struct {
	method, path, wordAfter string
	required                bool // path has no default
}{
	{http.MethodGet, "/workspaces/ws1/files", "ls -laL -- ", false},
	{http.MethodGet, "/workspaces/ws1/files/content", "f=", true},
	{http.MethodDelete, "/workspaces/ws1/files", "rm -rf -- ", true},
}

// FuzzFileQuery fuzzes the query of the file routes (files.go) with any raw
// query string, through the real router. Properties:
//   - the path the command names is exactly the query's last path value,
//     as one shell word that a shell reads back unchanged (nothing in it is
//     expanded: no $, backquote, glob or word split survives quoting);
//   - a missing required path is a 422 located at query.path, with no
//     command run; a path with a NUL byte runs no command;
//   - no answer is a 5xx.
func FuzzFileQuery(f *testing.F) {
	for _, q := range []string{
		"path=src/main.go", "path=../../../../etc/shadow", "path=%2Fetc%2Fpasswd", "path=a%00b", "path=it%27s",
		"path=%24(reboot)", "path=%60id%60", "path=*", "path=a&path=b", "path=", "", "path", "path=%zz",
		"path=%E2%80%A8%F0%9F%98%80", "path=a%0Ab%0Dc", "path=%27%27%27", "path=%5C%27", "x=1;path=2",
	} {
		for r := range fileQueryRoutes {
			f.Add(uint8(r), q)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, rawQuery string) {
		rt := fileQueryRoutes[int(route)%len(fileQueryRoutes)]
		u := &url.URL{Path: rt.path, RawQuery: rawQuery}
		r := httptest.NewRequest(rt.method, "/", nil)
		r.URL, r.RequestURI = u, u.RequestURI()
		r.Header.Set(headerUserID, "alice")
		r.Header.Set(headerServiceToken, testToken)
		fake := newFake(aliceWS())
		rec := httptest.NewRecorder()
		newTestEcho(fake, testToken).ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("%s ?%s: %d %s", rt.method, rawQuery, rec.Code, rec.Body.Bytes())
		}
		vals, given := u.Query()["path"]
		path := "."
		if given && len(vals) > 0 {
			path = vals[len(vals)-1]
		}
		fake.mu.Lock()
		execs := fake.execs
		fake.mu.Unlock()
		switch {
		case rt.required && (!given || len(vals) == 0):
			if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"loc":["query","path"]`) {
				t.Fatalf("no path: %d %s, want a 422 at query.path", rec.Code, rec.Body.Bytes())
			}
			fallthrough
		case strings.ContainsRune(path, 0):
			if len(execs) != 0 {
				t.Fatalf("ran %+v for path %q", execs, path)
			}
			return
		}
		if len(execs) == 0 {
			t.Fatalf("path %q: no command ran (%d %s)", path, rec.Code, rec.Body.Bytes())
		}
		cmd := execs[0].Command
		i := strings.Index(cmd, rt.wordAfter)
		if i < 0 {
			t.Fatalf("command %q: no %q", cmd, rt.wordAfter)
		}
		word, ok := shellWord(cmd[i+len(rt.wordAfter):])
		if !ok || word != path {
			t.Fatalf("command %q names %q (ok %v), want the path %q", cmd, word, ok, path)
		}
	})
}

// shellWord reads the first shell word of s as a POSIX shell would, up to
// blank, newline or ';'. ok is false when the word holds anything a shell
// would expand or interpret (unquoted $, backquote, glob, redirection,
// double quotes).
func shellWord(s string) (word string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case '\\':
			if i+1 >= len(s) {
				return "", false
			}
			i++
			b.WriteByte(s[i])
		case ' ', '\t', '\n', ';':
			return b.String(), true
		case '$', '`', '"', '*', '?', '[', '|', '&', '<', '>', '(', ')', '{', '}', '~', '#', '!':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
