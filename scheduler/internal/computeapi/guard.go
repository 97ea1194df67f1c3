package computeapi

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/auth"
)

const (
	headerUserID       = "X-User-ID"
	headerServiceToken = "X-Internal-Service-Token"

	// maxBodyBytes caps a request body. The body is read before the auth
	// checks (a malformed one is a 422 first, §1.2), so the cap also bounds
	// what an unauthenticated caller can make us buffer.
	maxBodyBytes = 64 << 20

	bodyKey = "computeapi.body"
)

// requestBody is a route's body as FastAPI would see it before validation.
type requestBody struct {
	present bool   // a non-empty body was sent
	isJSON  bool   // it was parsed as JSON into value
	value   any    // objects are map[string]any, numbers json.Number
	raw     string // the body text when it was not JSON
}

// guard runs the checks that come before validation, in the contract's
// order (§1.2): a malformed JSON body (routes with a body only), then
// X-User-ID, then the service token.
func (a *API) guard(withBody bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if withBody {
				b, err := readBody(c.Request())
				if err != nil {
					return err
				}
				c.Set(bodyKey, b)
			}
			if c.Request().Header.Get(headerUserID) == "" {
				return errMissingUserID
			}
			if err := a.checkToken(c.Request()); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// tokenOnly guards routes that need the service token but no user.
func (a *API) tokenOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := a.checkToken(c.Request()); err != nil {
			return err
		}
		return next(c)
	}
}

// checkToken is the service token check of contract §1.2 (auth.ServiceToken).
func (a *API) checkToken(r *http.Request) error {
	if f := auth.ServiceToken(r, a.d.ServiceToken); f != nil {
		return echo.NewHTTPError(f.Status, f.Detail)
	}
	return nil
}

// userID is the caller's X-User-ID; guard has checked that it is set.
func userID(c echo.Context) string { return c.Request().Header.Get(headerUserID) }

// bodyOf returns what guard read for the route.
func bodyOf(c echo.Context) requestBody {
	b, _ := c.Get(bodyKey).(requestBody)
	return b
}

// readBody reads and, when FastAPI would, parses the body: JSON is parsed
// when the content type is absent, application/json or +json; anything
// else is kept as text and fails validation later. Only a JSON syntax
// error is reported here.
func readBody(r *http.Request) (requestBody, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return requestBody{}, errBodyUnreadable
	}
	if len(data) > maxBodyBytes {
		return requestBody{}, errBodyTooLarge
	}
	if len(data) == 0 {
		return requestBody{}, nil
	}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		return requestBody{present: true, raw: string(data)}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers stay exact, for the int checks and for echoing input
	var v any
	if err := dec.Decode(&v); err != nil {
		return requestBody{}, jsonInvalid(err, len(data))
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return requestBody{}, jsonInvalidAt(int64(len(data)-len(rest)), "Extra data")
	}
	return requestBody{present: true, isJSON: true, value: v}, nil
}

func jsonContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
