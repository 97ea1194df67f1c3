package admin_test

import (
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/admin"
)

// A state-changing admin call authenticated by the session cookie needs
// the session's CSRF token and a same-origin browser; the admin token in a
// header needs neither; reads need no token.
func TestCSRF(t *testing.T) {
	r := newRig(t, "ws-1")
	s := r.session()
	other := r.session() // another signed-in browser: its token is not s's
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for hk, hv := range h {
			out[hk] = hv
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name       string
		method     string
		hdr        map[string]string
		wantStatus int
		wantDetail string
	}{
		{"cookie, token, same origin", "PATCH", s.writes(r), 200, ""},
		{"cookie, token, no Origin or Sec-Fetch-Site (not a browser)", "PATCH",
			with(with(s.writes(r), "Origin", ""), "Sec-Fetch-Site", ""), 200, ""},
		{"cookie without token", "PATCH", with(s.writes(r), admin.HeaderCSRF, ""), 403,
			"CSRF token missing: the panel sends it in X-CSRF-Token; API clients use the admin token instead of the cookie"},
		{"cookie with another session's token", "PATCH", with(s.writes(r), admin.HeaderCSRF, other.csrf), 403,
			"CSRF token does not match this session: reload the panel"},
		{"cookie, token, foreign Origin (a browser without Sec-Fetch-Site)", "PATCH",
			with(with(s.writes(r), "Origin", "https://evil.example"), "Sec-Fetch-Site", ""), 403,
			"Cross-origin request refused (Origin: https://evil.example)"},
		{"cookie, token, Origin null (a browser without Sec-Fetch-Site)", "PATCH",
			with(with(s.writes(r), "Origin", "null"), "Sec-Fetch-Site", ""), 403,
			"Cross-origin request refused (Origin: null)"},
		{"cookie, token, cross-site fetch", "PATCH", with(s.writes(r), "Sec-Fetch-Site", "cross-site"), 403,
			"Cross-origin request refused (Sec-Fetch-Site: cross-site)"},
		{"cookie, token, same-site but not same-origin", "PATCH", with(s.writes(r), "Sec-Fetch-Site", "same-site"), 403,
			"Cross-origin request refused (Sec-Fetch-Site: same-site)"},
		{"cookie, token, same-origin fetch through a proxy that rewrites Host", "PATCH",
			with(s.writes(r), "Origin", "https://admin.example"), 200, ""},
		{"bearer token, no CSRF token, foreign Origin", "PATCH",
			map[string]string{"Authorization": "Bearer " + adminToken, "Origin": "https://evil.example"}, 200, ""},
		{"cookie read without token", "GET", s.cookie(), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.method == "PATCH" {
				body = map[string]any{"state": "active"}
			}
			got := r.call(tt.method, "/admin/servers/ws-1", body, tt.hdr)
			wantStatus(t, got, tt.wantStatus)
			if tt.wantDetail != "" {
				if d := got.detail(t); d != tt.wantDetail {
					t.Errorf("detail = %q, want %q", d, tt.wantDetail)
				}
			}
		})
	}

	// Every state-changing route is behind the check, not only PATCH.
	for _, rt := range []struct{ method, path string }{
		{"POST", "/admin/servers"}, {"DELETE", "/admin/servers/ws-1"}, {"POST", "/admin/placements/explain"},
	} {
		got := r.call(rt.method, rt.path, map[string]any{}, s.cookie())
		if got.status != 403 {
			t.Errorf("%s %s with the cookie and no CSRF token = %d, want 403", rt.method, rt.path, got.status)
		}
	}

	// Sign-out is state-changing too: without the token it is refused and
	// the session lives on.
	out := r.call("POST", "/admin/ui/signout", "", with(s.cookie(), "Sec-Fetch-Site", "cross-site"))
	wantStatus(t, out, 403)
	out = r.call("POST", "/admin/ui/signout", "", s.cookie()) // no token
	wantStatus(t, out, 403)
	wantStatus(t, r.call("GET", "/admin/servers", nil, s.cookie()), 200)

	// Nor can another site sign a browser in (login CSRF).
	res, ck := signIn(t, r, adminToken, map[string]string{"Sec-Fetch-Site": "cross-site"})
	if res.status != 403 || ck != nil {
		t.Errorf("cross-site sign-in = %d, cookie %v: want 403 and no session", res.status, ck)
	}
}

// Signing out ends the session's open event stream at once.
func TestSignOutEndsStream(t *testing.T) {
	r := newRig(t, "ws-1")
	s := r.session()
	events := sseEvents(t, r.url, s)
	waitFor(t, events, 2*time.Second, "the first snapshot", func(admin.Overview) bool { return true })
	wantStatus(t, r.call("POST", "/admin/ui/signout", "", s.writes(r)), 303)
	deadline := time.After(time.Second) // well before the 2 s heartbeat
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the stream of a signed-out session is still open after 1 s")
		}
	}
}

// Over TLS the session cookie is Secure.
func TestSecureCookieOverTLS(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewTLSServer(r.handler)
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(srv.URL+"/admin/ui/signin", url.Values{"token": {adminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == admin.CookieName {
			ck = c
		}
	}
	if resp.StatusCode != 303 || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in over TLS: %d, cookie %+v: want 303 and a Secure, HttpOnly, SameSite=Strict cookie", resp.StatusCode, ck)
	}
}

// The sign-in form is bounded before anything is read: 4 KiB, only a
// URL-encoded form or JSON (never multipart, which spilled to disk).
func TestSigninBounds(t *testing.T) {
	r := newRig(t)

	var mp strings.Builder
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("upload", "big.bin")
	_, _ = fw.Write([]byte(strings.Repeat("x", 256<<10)))
	_ = mw.WriteField("token", adminToken)
	_ = mw.Close()

	form := func(token string) string { return url.Values{"token": {token}}.Encode() }
	tests := []struct {
		name       string
		ctype      string
		body       string
		wantStatus int
		wantText   string
	}{
		{"form", "application/x-www-form-urlencoded", form(adminToken), 303, ""},
		{"form with charset", "application/x-www-form-urlencoded; charset=utf-8", form(adminToken), 303, ""},
		{"JSON", "application/json", `{"token":"` + adminToken + `"}`, 303, ""},
		{"form over 4 KiB", "application/x-www-form-urlencoded", form(adminToken) + "&pad=" + strings.Repeat("x", 4<<10), 413,
			"The form is larger than 4096 bytes."},
		{"multipart upload", mw.FormDataContentType(), mp.String(), 413, "The form is larger than 4096 bytes."},
		{"small multipart", mw.FormDataContentType(), "--x--", 415, "Send the form as application/x-www-form-urlencoded or application/json"},
		{"text", "text/plain", "token=" + adminToken, 415, "Send the form as application/x-www-form-urlencoded or application/json"},
		{"no content type", "", form(adminToken), 415, "Send the form as application/x-www-form-urlencoded or application/json"},
		{"JSON not an object of strings", "application/json", `{"token":5}`, 400, "The JSON body must be an object of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": tt.ctype}
			got := r.call("POST", "/admin/ui/signin", tt.body, hdr)
			wantStatus(t, got, tt.wantStatus)
			if tt.wantText != "" && !strings.Contains(string(got.body), tt.wantText) {
				t.Errorf("page does not say %q: %s", tt.wantText, got.body)
			}
		})
	}

	// A declared length over the bound is refused before the body is read:
	// the client is still writing when the answer comes.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", r.url+"/admin/ui/signin", pr)
	req.ContentLength = 200 << 20
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	go func() { _, _ = pw.Write([]byte("token=")) }()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("declared 200 MiB body = %d, want 413", resp.StatusCode)
	}
}

// Failed sign-ins from one address are limited: past SigninFailures in a
// window, even the right token is 429 with Retry-After.
func TestSigninRateLimit(t *testing.T) {
	r := newRig(t)
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for i := range admin.SigninFailures {
		if got := r.call("POST", "/admin/ui/signin", url.Values{"token": {"wrong"}}.Encode(), hdr); got.status != 401 {
			t.Fatalf("failed sign-in %d = %d, want 401", i+1, got.status)
		}
	}
	got := r.call("POST", "/admin/ui/signin", url.Values{"token": {adminToken}}.Encode(), hdr)
	wantStatus(t, got, 429)
	ra, err := strconv.Atoi(got.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > int(admin.SigninWindow.Seconds())+1 {
		t.Errorf("Retry-After = %q, want 1 to %d seconds", got.header.Get("Retry-After"), int(admin.SigninWindow.Seconds())+1)
	}
	if !strings.Contains(string(got.body), "Too many failed sign-ins") {
		t.Errorf("429 page does not say why: %s", got.body)
	}
	// The bearer API is not affected.
	wantStatus(t, r.admin("GET", "/admin/servers", nil), 200)
}
