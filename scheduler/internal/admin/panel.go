package admin

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/auth"
	"berth/scheduler/internal/registry"
)

// The admin panel: one page rendered from embedded files (html/template, a
// small script and a style sheet; nothing is fetched from elsewhere), kept
// current by a server-sent event stream of Overview snapshots. Its actions
// call the admin API with the session cookie and the session's CSRF token
// (csrf.go); sessions are server-side (session.go).

//go:embed ui
var uiFiles embed.FS

var (
	uiStatic = mustSub(uiFiles, "ui/static")
	uiPages  = template.Must(template.ParseFS(uiFiles, "ui/*.html"))
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Timing of the panel's event stream.
const (
	streamPoll      = 250 * time.Millisecond // how often the registry's event log is checked for news
	streamHeartbeat = 2 * time.Second        // a fresh snapshot at least this often
	streamMinGap    = 100 * time.Millisecond // between snapshots, so bursts of gossip updates coalesce
)

// contentSecurityPolicy allows nothing but this origin: no CDN, no inline
// script, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (a *API) registerPanel(e *echo.Echo) {
	e.GET("/admin/ui", a.handle(a.page))
	e.GET("/admin/ui/", a.handle(a.page))
	e.GET("/admin/ui/signin", a.handle(a.signinForm))
	e.POST("/admin/ui/signin", a.handle(a.signin))
	e.POST("/admin/ui/signout", a.handle(a.signout))
	e.GET("/admin/ui/static/:file", a.handle(a.static))
	e.GET("/admin/ui/events", a.handle(a.stream), func(next echo.HandlerFunc) echo.HandlerFunc { return a.requireAuth(false, next) },
		a.streaming)
}

// streaming takes the panel's event stream, which lives as long as the page
// is open, off the server's whole-request write timeout: each write is
// bounded by Deps.HTTP.Stall instead (httpbudget). It runs after the auth
// check, so a refused request keeps the whole-request bounds.
func (a *API) streaming(next echo.HandlerFunc) echo.HandlerFunc {
	return a.d.HTTP.OrDefault().EchoStreaming(next)
}

// pageData is what the templates render.
type pageData struct {
	Error    string
	CSRF     string // the session's CSRF token, for the script and the sign-out form
	Overview Overview
}

func (a *API) render(c echo.Context, status int, name string, data pageData) error {
	var buf bytes.Buffer
	if err := uiPages.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// Nothing leaves for other sites; same-origin requests keep their
	// Origin header (no-referrer would make it "null"), which checkOrigin
	// reads in browsers without Sec-Fetch-Site.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

// page is the panel; without a valid session it sends the browser to sign in.
func (a *API) page(c echo.Context) error {
	who, err := a.authenticate(c.Request(), true)
	if err != nil {
		return c.Redirect(http.StatusSeeOther, "/admin/ui/signin")
	}
	o, err := a.overview(c.Request().Context())
	if err != nil {
		return err
	}
	return a.render(c, http.StatusOK, "page.html", pageData{Overview: o, CSRF: who.session.csrf})
}

func (a *API) signinForm(c echo.Context) error {
	return a.render(c, http.StatusOK, "signin.html", pageData{})
}

// signin checks the posted token (a bounded form: signin.go) and starts a
// server-side session, whose random id goes in an HttpOnly,
// SameSite=Strict cookie, Secure over TLS.
func (a *API) signin(c echo.Context) error {
	r := c.Request()
	refuse := func(status int, msg string) error {
		return a.render(c, status, "signin.html", pageData{Error: msg})
	}
	if err := checkOrigin(r); err != nil {
		return refuse(http.StatusForbidden, "Sign in from the panel's own page.")
	}
	addr := clientAddr(r)
	if wait := a.signinLimit.blocked(addr); wait > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		return refuse(http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins from %s: try again in %d s.", addr, int(wait.Seconds())+1))
	}
	form, err := readForm(r)
	if err != nil {
		fe := asFormError(err)
		return refuse(fe.status, fe.msg)
	}
	switch {
	case a.d.Token == "":
		return refuse(http.StatusInternalServerError, "The admin token is not configured (BERTH_ADMIN_TOKEN).")
	case !auth.Equal(form.Get("token"), a.d.Token):
		a.signinLimit.failed(addr)
		a.log.Warn("admin panel sign-in refused", "remote", addr)
		return refuse(http.StatusUnauthorized, "That is not the admin token.")
	}
	id, _ := a.sessions.create()
	c.SetCookie(a.sessionCookie(r, id, int(a.sessions.ttl.Seconds())))
	a.log.Info("admin panel sign-in", "remote", addr)
	return c.Redirect(http.StatusSeeOther, "/admin/ui")
}

// signout ends the session server-side, so the old cookie opens nothing,
// and clears the cookie. A live session must pass the CSRF check (the form
// carries the token); without one there is nothing to end.
func (a *API) signout(c echo.Context) error {
	r := c.Request()
	if ck, err := r.Cookie(CookieName); err == nil {
		if s, ok := a.sessions.lookup(ck.Value, false); ok {
			form, err := readForm(r)
			if err != nil {
				fe := asFormError(err)
				return echo.NewHTTPError(fe.status, fe.msg)
			}
			if err := checkCSRF(r, s, form.Get(FieldCSRF)); err != nil {
				return err
			}
			a.sessions.remove(ck.Value)
			a.changes.signal() // the session's event streams end
		}
	}
	c.SetCookie(a.sessionCookie(r, "", -1))
	return c.Redirect(http.StatusSeeOther, "/admin/ui/signin")
}

// sessionCookie is the panel's cookie: Secure when the request came over
// TLS (or says it did through a proxy, X-Forwarded-Proto), or when
// SecureCookie forces it.
func (a *API) sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	secure := a.d.SecureCookie || r.TLS != nil || r.Header.Get(echo.HeaderXForwardedProto) == "https"
	return &http.Cookie{Name: CookieName, Value: value, Path: "/admin", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure}
}

// static serves the script and the style sheet.
func (a *API) static(c echo.Context) error {
	name := path.Clean(c.Param("file"))
	b, err := fs.ReadFile(uiStatic, name)
	if err != nil {
		return echo.ErrNotFound
	}
	ctype := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}[path.Ext(name)]
	if ctype == "" {
		return echo.ErrNotFound
	}
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, ctype, b)
}

// stream sends an Overview at once, then again whenever the registry's
// event log moves (health, state, workspace changes), gossip reports an
// event or an admin write happens, and at least every streamHeartbeat.
func (a *API) stream(c echo.Context) error {
	ctx := c.Request().Context()
	a.watchGossip()
	a.hookShutdown(c.Request())
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return nil
	}

	var lastEvent int64 // the newest registry event the last snapshot showed
	var lastSent time.Time
	who, _ := c.Get(callerKey).(caller)
	send := func() bool {
		if who.sessionID != "" {
			if _, ok := a.sessions.lookup(who.sessionID, false); !ok {
				return false // signed out or expired: the panel's reconnect meets 401
			}
		}
		lastSent = time.Now() // also on failure: retry at the next heartbeat, not at once
		o, err := a.overview(ctx)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("panel snapshot", "error", err)
			}
			return ctx.Err() == nil
		}
		lastEvent = 0
		if len(o.Events) > 0 {
			lastEvent = o.Events[0].ID
		}
		b, err := json.Marshal(o)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
			return false
		}
		w.Flush()
		return true
	}
	changes, unsubscribe := a.changes.subscribe()
	defer unsubscribe()
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	var gap <-chan time.Time // set while a change waits for streamMinGap to pass
	dirty := true
	for {
		since := time.Since(lastSent)
		switch {
		case (dirty && since >= streamMinGap) || since >= streamHeartbeat:
			if !send() {
				return nil
			}
			dirty, gap = false, nil
		case dirty && gap == nil:
			gap = time.After(streamMinGap - since)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.closing:
			return nil
		case <-changes:
			dirty = true
		case <-gap:
			gap = nil
		case <-tick.C:
			if a.latestEvent(ctx) != lastEvent {
				dirty = true
			}
		}
	}
}

// latestEvent is the id of the newest registry event, 0 when none.
func (a *API) latestEvent(ctx context.Context) int64 {
	events, err := a.d.Registry.ListEvents(ctx, registry.EventFilter{Limit: 1})
	if err != nil || len(events) == 0 {
		return 0
	}
	return events[0].ID
}
