package admin

import (
	"berth/scheduler/internal/auth"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Cross-site request forgery: a request that changes state and is
// authenticated by the panel's cookie must come from the panel itself. It
// must carry the session's CSRF token (the panel's script sends it in
// HeaderCSRF, the sign-out form in the field FieldCSRF), and the browser's
// own statement of where it comes from must agree (checkOrigin). Requests with
// the admin token in a header are API clients: a browser never adds that
// header to a cross-site request (and /admin answers no CORS preflight),
// so they need neither.

// HeaderCSRF carries the session's CSRF token on the panel's API calls.
const HeaderCSRF = "X-CSRF-Token"

// FieldCSRF carries it in the panel's sign-out form.
const FieldCSRF = "csrf_token"

// safeMethod reports whether method changes nothing (no CSRF check).
func safeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// checkCSRF checks a state-changing request of session s: its origin
// (checkOrigin) and its CSRF token, from HeaderCSRF or else formToken.
func checkCSRF(r *http.Request, s session, formToken string) error {
	if err := checkOrigin(r); err != nil {
		return err
	}
	token := r.Header.Get(HeaderCSRF)
	if token == "" {
		token = formToken
	}
	if token == "" {
		return echo.NewHTTPError(http.StatusForbidden, "CSRF token missing: the panel sends it in "+HeaderCSRF+"; API clients use the admin token instead of the cookie")
	}
	if !auth.Equal(token, s.csrf) { // constant time; an empty csrf never matches
		return echo.NewHTTPError(http.StatusForbidden, "CSRF token does not match this session: reload the panel")
	}
	return nil
}

// crossOrigin is the standard library's check of where a browser request
// comes from (Sec-Fetch-Site, else Origin against Host).
var crossOrigin = http.NewCrossOriginProtection()

// checkOrigin refuses a state-changing request whose browser says it comes
// from another origin: Sec-Fetch-Site other than same-origin (or none: typed
// by the user), or, from a browser that does not send it, an Origin whose
// host is not the request's Host. Clients that send neither (not a
// browser) pass. Behind a proxy that rewrites Host, browsers that send
// Sec-Fetch-Site (all current ones) still pass.
func checkOrigin(r *http.Request) error {
	if err := crossOrigin.Check(r); err != nil {
		detail := "Cross-origin request refused"
		switch site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin"); {
		case site != "":
			detail += " (Sec-Fetch-Site: " + site + ")"
		case origin != "":
			detail += " (Origin: " + origin + ")"
		}
		return echo.NewHTTPError(http.StatusForbidden, detail)
	}
	return nil
}
