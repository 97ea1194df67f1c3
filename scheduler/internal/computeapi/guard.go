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

	// DefaultJSONBodyLimit caps the body of a route that takes JSON
	// (Deps.JSONBodyLimit, BERTH_JSON_BODY_LIMIT): the largest podex sends
	// is a create with its environment and repositories, a few KiB.
	DefaultJSONBodyLimit = 1 << 20
	// maxJSONValues caps the values (objects, arrays, and the members and
	// elements after the first) of a JSON body, counted before it is
	// parsed: a body of 1 MiB of [{},{},…] would otherwise build some
	// 350 000 maps.
	maxJSONValues = 10_000

	bodyKey = "computeapi.body"
)

// requestBody is a route's body as FastAPI would see it before validation.
type requestBody struct {
	present bool   // a non-empty body was sent
	isJSON  bool   // it was parsed as JSON into value
	value   any    // objects are map[string]any, numbers json.Number
	raw     string // the body text when it was not JSON
}

// guard runs the checks that come before validation: X-User-ID, then the
// service token (§1.2 steps 2 and 3), then, on routes with a body, reading
// and parsing the body, bounded by Deps.JSONBodyLimit (413 beyond).
//
// Deviation from the contract, on purpose (issue 12): §1.2 step 1, where
// FastAPI parsed the JSON body first and answered a malformed one with 422
// before any header check, is now the last of the three. Nothing of an
// unauthenticated request's body is read or parsed, so an anonymous caller
// cannot make us buffer or build anything. Only a request that is both
// unauthenticated and malformed answers differently: 401 instead of 422
// (README, "Request budgets").
func (a *API) guard(withBody bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get(headerUserID) == "" {
				return errMissingUserID
			}
			if err := a.checkToken(c.Request()); err != nil {
				return err
			}
			if withBody {
				b, err := readBodyLimited(c.Request(), a.d.JSONBodyLimit)
				if err != nil {
					return err
				}
				c.Set(bodyKey, b)
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
	if f := auth.ServiceToken(r, a.d.ServiceToken, a.d.ServiceTokenNext); f != nil {
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

// readBody is readBodyLimited with the default limit.
func readBody(r *http.Request) (requestBody, error) {
	return readBodyLimited(r, DefaultJSONBodyLimit)
}

// readBodyLimited reads and, when FastAPI would, parses the body: JSON is
// parsed when the content type is absent, application/json or +json;
// anything else is kept as text and fails validation later. A body longer
// than limit is refused before it is read when its length is declared,
// else once limit+1 bytes came (413); a JSON body of more than
// maxJSONValues values is refused before it is parsed (413). Only a JSON
// syntax error is reported here otherwise.
func readBodyLimited(r *http.Request, limit int64) (requestBody, error) {
	if r.ContentLength > limit {
		return requestBody{}, jsonBodyTooLarge(limit)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 512), limit)+1))
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return requestBody{}, errBodyUnreadable
	}
	data := buf.Bytes()
	if int64(len(data)) > limit {
		return requestBody{}, jsonBodyTooLarge(limit)
	}
	if len(data) == 0 {
		return requestBody{}, nil
	}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		return requestBody{present: true, raw: string(data)}, nil
	}
	if jsonValues(data) > maxJSONValues {
		return requestBody{}, errTooManyJSONValues
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

// jsonValues counts, without parsing, the values a JSON text would build
// beyond its first: each object and array, and each member or element
// after the first one of its container (a comma). Bytes inside strings do
// not count. An invalid text gets some count; the parser refuses it later.
func jsonValues(data []byte) int {
	n, inString, escaped := 0, false, false
	for _, b := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch b {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '{', b == '[', b == ',':
			n++
		}
	}
	return n
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
