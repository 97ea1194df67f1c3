package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
)

// fakeClock is a settable time for sessions and the sign-in limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// sessionAPI is an API with only what sign-in and the auth check need,
// on a fake clock, with one protected route (GET and POST /admin/probe).
func sessionAPI(t *testing.T, ttl, idle time.Duration) (*API, *fakeClock, http.Handler) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := New(Deps{Token: "admin-token-for-tests", SessionTTL: ttl, SessionIdle: idle})
	a.sessions.now, a.signinLimit.now = clock.now, clock.now
	e := echo.New()
	e.POST("/admin/ui/signin", a.handle(a.signin))
	e.POST("/admin/ui/signout", a.handle(a.signout))
	ok := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
	e.GET("/admin/probe", ok, a.requireToken)
	e.POST("/admin/probe", ok, a.requireToken)
	return a, clock, e
}

// signInSession signs in and returns the session id and its CSRF token.
func signInSession(t *testing.T, a *API, h http.Handler) (string, string) {
	t.Helper()
	req := httptest.NewRequest("POST", "/admin/ui/signin", strings.NewReader(url.Values{"token": {"admin-token-for-tests"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == CookieName {
			s, ok := a.sessions.lookup(c.Value, false)
			if !ok {
				t.Fatal("the new session is not in the table")
			}
			return c.Value, s.csrf
		}
	}
	t.Fatalf("sign-in = %d, no cookie", rec.Code)
	return "", ""
}

func probe(h http.Handler, method, id, csrf string) int {
	req := httptest.NewRequest(method, "/admin/probe", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: id})
	if csrf != "" {
		req.Header.Set(HeaderCSRF, csrf)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// Sessions end after the idle time unused, and after the TTL however much
// they are used.
func TestSessionExpiry(t *testing.T) {
	type step struct {
		advance time.Duration
		want    int // GET /admin/probe with the cookie
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"used within idle, before ttl", []step{{50 * time.Minute, 204}, {50 * time.Minute, 204}, {50 * time.Minute, 204}}},
		{"unused for the idle time", []step{{59 * time.Minute, 204}, {time.Hour, 401}}},
		{"used all along, past the ttl", []step{
			{55 * time.Minute, 204}, {55 * time.Minute, 204}, {55 * time.Minute, 204}, {55 * time.Minute, 204},
			{55 * time.Minute, 204}, {55 * time.Minute, 204}, {55 * time.Minute, 204}, {55 * time.Minute, 204},
			{55 * time.Minute, 204}, {55 * time.Minute, 204}, {55 * time.Minute, 204}, {55 * time.Minute, 204},
			{55 * time.Minute, 204}, {55 * time.Minute, 401}, // 13×55 min = 11h55m; 14×55 = 12h50m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, clock, h := sessionAPI(t, 12*time.Hour, time.Hour)
			id, _ := signInSession(t, a, h)
			var got, want []int
			for _, s := range tt.steps {
				clock.add(s.advance)
				got, want = append(got, probe(h, "GET", id, "")), append(want, s.want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			a.sessions.mu.Lock()
			_, held := a.sessions.byID[id]
			a.sessions.mu.Unlock()
			if held && want[len(want)-1] == 401 {
				t.Error("an expired session is still in the table")
			}
		})
	}
}

// The event stream's check does not keep a session alive.
func TestSessionStreamCheckDoesNotTouch(t *testing.T) {
	a, clock, h := sessionAPI(t, 12*time.Hour, time.Hour)
	id, _ := signInSession(t, a, h)
	for range 3 {
		clock.add(25 * time.Minute)
		a.sessions.lookup(id, false)
	}
	if code := probe(h, "GET", id, ""); code != 401 {
		t.Errorf("after 75 min of stream checks only = %d, want 401 (idle)", code)
	}
}

// Sign-out deletes the session: the old cookie, replayed with its CSRF
// token, is refused.
func TestSignOutInvalidates(t *testing.T) {
	a, _, h := sessionAPI(t, 12*time.Hour, time.Hour)
	id, csrf := signInSession(t, a, h)
	if code := probe(h, "POST", id, csrf); code != 204 {
		t.Fatalf("write with the session = %d, want 204", code)
	}
	req := httptest.NewRequest("POST", "/admin/ui/signout", strings.NewReader(url.Values{FieldCSRF: {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: CookieName, Value: id})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 303 {
		t.Fatalf("sign-out = %d, want 303", rec.Code)
	}
	if got := []int{probe(h, "GET", id, ""), probe(h, "POST", id, csrf)}; !cmp.Equal(got, []int{401, 401}) {
		t.Errorf("replayed cookie after sign-out: GET, POST = %v, want 401, 401", got)
	}
}

// The table is bounded: past maxSessions the least recently used ends.
func TestSessionTableBound(t *testing.T) {
	s := newSessions(time.Hour, time.Hour)
	clock := &fakeClock{t: time.Now()}
	s.now = clock.now
	first, _ := s.create()
	clock.add(time.Second)
	second, _ := s.create()
	for range maxSessions - 2 {
		clock.add(time.Millisecond)
		s.create()
	}
	clock.add(time.Second)
	s.lookup(first, true) // first is now the most recently used; second the least
	s.create()
	_, firstOK := s.lookup(first, false)
	_, secondOK := s.lookup(second, false)
	if !firstOK || secondOK || len(s.byID) != maxSessions {
		t.Errorf("after %d+1 sessions: first alive %v, second alive %v, %d in the table; want true, false, %d",
			maxSessions, firstOK, secondOK, len(s.byID), maxSessions)
	}
}

// Failed sign-ins are counted per address within the window, which then
// passes.
func TestSigninLimiterWindow(t *testing.T) {
	l := newSigninLimiter()
	clock := &fakeClock{t: time.Now()}
	l.now = clock.now
	for range SigninFailures {
		l.failed("10.0.0.1")
	}
	if l.blocked("10.0.0.1") == 0 || l.blocked("10.0.0.2") != 0 {
		t.Fatalf("after %d failures: 10.0.0.1 blocked %s, 10.0.0.2 blocked %s; want only 10.0.0.1",
			SigninFailures, l.blocked("10.0.0.1"), l.blocked("10.0.0.2"))
	}
	clock.add(SigninWindow)
	if d := l.blocked("10.0.0.1"); d != 0 {
		t.Errorf("after the window: blocked %s, want free", d)
	}
}

// With the table full, new addresses still count: together, in one
// window, so guessing from ever new addresses is limited too.
func TestSigninLimiterFullTable(t *testing.T) {
	l := newSigninLimiter()
	clock := &fakeClock{t: time.Now()}
	l.now = clock.now
	for i := range maxSigninClients {
		l.failed(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	for i := range SigninFailures {
		l.failed(fmt.Sprintf("2001:db8::%x", i)) // each address new
	}
	if d := l.blocked("2001:db8::ffff"); d == 0 {
		t.Errorf("after %d failures from untracked addresses, another is not blocked", SigninFailures)
	}
	if d := l.blocked("10.1.0.1"); d != 0 {
		t.Errorf("a tracked address under its limit is blocked %s", d)
	}
}
