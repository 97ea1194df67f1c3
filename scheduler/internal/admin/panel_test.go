package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/admin"
)

func plainServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// panelSession is a signed-in browser: its session cookie and the CSRF
// token the panel page carries.
type panelSession struct {
	id, csrf string
}

// cookie is the Cookie header of the session.
func (s panelSession) cookie() map[string]string {
	return map[string]string{"Cookie": admin.CookieName + "=" + s.id}
}

// writes is the headers of a state-changing call from the panel's script:
// the cookie, the CSRF token and the browser's own origin headers.
func (s panelSession) writes(r *rig) map[string]string {
	h := s.cookie()
	h[admin.HeaderCSRF] = s.csrf
	h["Origin"] = r.url
	h["Sec-Fetch-Site"] = "same-origin"
	return h
}

var csrfMeta = regexp.MustCompile(`<meta name="berth-csrf" content="([^"]+)">`)

// session signs in with the admin token and reads the CSRF token from the
// panel page.
func (r *rig) session() panelSession {
	r.t.Helper()
	res, ck := signIn(r.t, r, adminToken, nil)
	if ck == nil {
		r.t.Fatalf("sign-in set no cookie: %d %s", res.status, res.body)
	}
	s := panelSession{id: ck.Value}
	page := r.call("GET", "/admin/ui", nil, s.cookie())
	wantStatus(r.t, page, 200)
	m := csrfMeta.FindSubmatch(page.body)
	if m == nil {
		r.t.Fatalf("the panel page carries no CSRF token")
	}
	s.csrf = string(m[1])
	return s
}

// signIn posts the form and returns the session cookie it sets.
func signIn(t *testing.T, r *rig, token string, hdr map[string]string) (response, *http.Cookie) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range hdr {
		h[k] = v
	}
	res := r.call("POST", "/admin/ui/signin", url.Values{"token": {token}}.Encode(), h)
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == admin.CookieName {
			return res, c
		}
	}
	return res, nil
}

func TestSignIn(t *testing.T) {
	r := newRig(t, "ws-1")
	tests := []struct {
		name       string
		token      string
		hdr        map[string]string
		wantStatus int
		wantCookie bool
		wantSecure bool
	}{
		{"wrong token", "nope", nil, 401, false, false},
		{"right token over http", adminToken, nil, 303, true, false},
		{"right token behind a TLS proxy", adminToken, map[string]string{"X-Forwarded-Proto": "https"}, 303, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ck := signIn(t, r, tt.token, tt.hdr)
			wantStatus(t, res, tt.wantStatus)
			if (ck != nil) != tt.wantCookie {
				t.Fatalf("cookie = %v, want one: %v", ck, tt.wantCookie)
			}
			if !tt.wantCookie {
				if !strings.Contains(string(res.body), "That is not the admin token.") {
					t.Errorf("refusal page does not say why: %s", res.body)
				}
				return
			}
			if loc := res.header.Get("Location"); loc != "/admin/ui" {
				t.Errorf("Location = %q, want /admin/ui", loc)
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/admin" || ck.Secure != tt.wantSecure {
				t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/admin, Secure=%v", ck, tt.wantSecure)
			}
			if len(ck.Value) < 40 || strings.Contains(ck.Value, adminToken) {
				t.Errorf("cookie value %q: want a random session id, not the admin token", ck.Value)
			}
		})
	}

	// The cookie opens the panel and the API; the admin token as a cookie
	// opens nothing.
	s := r.session()
	wantStatus(t, r.call("GET", "/admin/servers", nil, s.cookie()), 200)
	if res := r.call("GET", "/admin/ui", nil, nil); res.status != 303 || res.header.Get("Location") != "/admin/ui/signin" {
		t.Errorf("panel without session = %d to %q, want 303 to the sign-in page", res.status, res.header.Get("Location"))
	}
	tokenCookie := map[string]string{"Cookie": admin.CookieName + "=" + adminToken}
	wantStatus(t, r.call("GET", "/admin/servers", nil, tokenCookie), 401)

	// Signing out ends the session on the server: the old cookie, replayed,
	// opens neither the API nor the panel.
	form := url.Values{admin.FieldCSRF: {s.csrf}}.Encode()
	hdr := s.cookie()
	hdr["Content-Type"] = "application/x-www-form-urlencoded"
	out := r.call("POST", "/admin/ui/signout", form, hdr)
	wantStatus(t, out, 303)
	if ck := (&http.Response{Header: out.header}).Cookies(); len(ck) != 1 || ck[0].MaxAge >= 0 || ck[0].Value != "" {
		t.Errorf("sign-out cookies = %+v, want the session cookie expired", ck)
	}
	replay := r.call("GET", "/admin/servers", nil, s.cookie())
	wantStatus(t, replay, 401)
	if d := replay.detail(t); d != "Session expired or signed out: sign in again" {
		t.Errorf("replayed cookie: detail %q", d)
	}
	if res := r.call("GET", "/admin/ui", nil, s.cookie()); res.status != 303 {
		t.Errorf("panel with the signed-out cookie = %d, want 303 to the sign-in page", res.status)
	}
}

// The panel is self-contained: every file it loads comes from this
// origin, and nothing names another host.
func TestPanelIsSelfContained(t *testing.T) {
	r := newRig(t, "ws-1")
	page := r.call("GET", "/admin/ui", nil, r.session().cookie())
	wantStatus(t, page, 200)
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want only this origin", csp)
	}
	html := string(page.body)
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 2 {
		t.Fatalf("page loads %v, want its script and style sheet", refs)
	}
	files := map[string]string{"/admin/ui": html}
	for _, ref := range refs {
		if !strings.HasPrefix(ref[1], "/admin/ui/static/") {
			t.Errorf("page loads %q, want files under /admin/ui/static/", ref[1])
			continue
		}
		res := r.call("GET", ref[1], nil, nil)
		wantStatus(t, res, 200)
		files[ref[1]] = string(res.body)
	}
	signin := r.call("GET", "/admin/ui/signin", nil, nil)
	wantStatus(t, signin, 200)
	files["/admin/ui/signin"] = string(signin.body)
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	for name, body := range files {
		if m := external.FindString(body); m != "" {
			t.Errorf("%s refers to %q, want nothing from elsewhere", name, m)
		}
	}
	if !strings.Contains(html, `"id":"ws-1"`) {
		t.Errorf("page does not carry the initial snapshot with ws-1")
	}
	wantStatus(t, r.call("GET", "/admin/ui/static/nope.js", nil, nil), 404)
}

// sseEvents reads snapshot events of the panel stream of session s into a
// channel, closed when the stream ends.
func sseEvents(t *testing.T, baseURL string, s panelSession) <-chan admin.Overview {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", baseURL+"/admin/ui/events", nil)
	req.AddCookie(&http.Cookie{Name: admin.CookieName, Value: s.id})
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the reader goroutine below, or before Fatalf
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan admin.Overview, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "snapshot":
				var o admin.Overview
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &o) == nil {
					out <- o
				}
			}
		}
	}()
	return out
}

// waitFor reads snapshots until one satisfies cond, or fails at the deadline.
func waitFor(t *testing.T, events <-chan admin.Overview, within time.Duration, what string, cond func(admin.Overview) bool) admin.Overview {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case o, ok := <-events:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", what)
			}
			if cond(o) {
				return o
			}
		case <-deadline:
			t.Fatalf("no snapshot within %s with %s", within, what)
		}
	}
}

func TestPanelStream(t *testing.T) {
	r := newRig(t, "ws-1")
	events := sseEvents(t, r.url, r.session())
	first := waitFor(t, events, 2*time.Second, "the first snapshot", func(admin.Overview) bool { return true })
	if len(first.Servers) != 1 || first.Servers[0].ID != "ws-1" || first.Servers[0].Health != "healthy" ||
		first.Cluster.Servers.Total != 1 || first.Workspaces["ws-1"] == nil {
		t.Fatalf("first snapshot = %+v, want ws-1 healthy", first)
	}

	// A registry change reaches the page well before the heartbeat.
	start := time.Now()
	wantStatus(t, r.admin("PATCH", "/admin/servers/ws-1", map[string]any{"state": "draining"}), 200)
	waitFor(t, events, time.Second, "ws-1 draining", func(o admin.Overview) bool {
		return len(o.Servers) == 1 && o.Servers[0].State == "draining"
	})
	t.Logf("state change on the stream after %s", time.Since(start))

	// So does a health change written by the health tracker.
	if _, err := r.db.SetServerHealth(context.Background(), "ws-1", "unreachable", "2 probes failed: connection refused", time.Time{}); err != nil {
		t.Fatal(err)
	}
	o := waitFor(t, events, time.Second, "ws-1 unreachable", func(o admin.Overview) bool {
		return len(o.Servers) == 1 && o.Servers[0].Health == "unreachable"
	})
	if o.Servers[0].LastError != "2 probes failed: connection refused" || len(o.Events) == 0 {
		t.Errorf("unreachable ws-1 = %+v, events %d: want its last error and the event log", o.Servers[0], len(o.Events))
	}

	// And a gossip event.
	r.gossip.set(agentMember("ws-new", "10.0.0.9:7443"))
	waitFor(t, events, time.Second, "the gossiped agent", func(o admin.Overview) bool {
		return len(o.Discovered) == 1 && o.Discovered[0].ID == "ws-new" && len(o.Members) == 1
	})

	// With nothing changing, a fresh snapshot still comes every 2 s.
	for i := range 2 {
		o := waitFor(t, events, 2500*time.Millisecond, "a heartbeat snapshot", func(admin.Overview) bool { return true })
		if o.Generated == nil {
			t.Errorf("heartbeat %d has no generated_at", i)
		}
	}
}

// An open panel does not hold up the scheduler's shutdown: the stream ends
// when the http.Server shuts down.
func TestPanelStreamEndsOnShutdown(t *testing.T) {
	r := newRig(t, "ws-1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r.handler}
	go srv.Serve(l)
	events := sseEvents(t, "http://"+l.Addr().String(), r.session())
	waitFor(t, events, 2*time.Second, "the first snapshot", func(admin.Overview) bool { return true })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open panel stream: %v, want the stream to end", err)
	}
	for range events { // drained and closed: the stream ended
	}
}
