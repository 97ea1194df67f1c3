package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"berth/shared/testutil"
)

// FuzzReadModel fuzzes the podex /servers routes' pydantic-style model
// reader (podex.go: readModel and its field readers). Properties:
//   - a refusal is a 400 or a 422 whose entries each have a type, a
//     message and a location in the body;
//   - an accepted int field is what pydantic makes of it (pydanticInt: a
//     JSON float is a float64 first, so 1.0000000000000001 is 1 there too;
//     beyond int64 is refused), an accepted bool one of pydantic's
//     spellings;
//   - reading costs at most testutil.AllocBound of the body.
func FuzzReadModel(f *testing.F) {
	for _, s := range []string{
		`{"image":"busybox","tag":"latest","docker_port":2376,"tls_enabled":true}`,
		`{"image":1,"tag":null,"docker_port":"2376","tls_enabled":"yes"}`,
		`{"docker_port":2376.0,"tls_enabled":0}`,
		`{"docker_port":1.0000000000000001,"tls_enabled":"of"}`,
		`{"image":"i","docker_port":1.0000000000000001,"tls_enabled":false}`,
		`{"docker_port":1e-400,"tls_enabled":2}`,
		`{"image":"i","docker_port":1e-400,"tls_enabled":"n"}`,
		`{"docker_port":9223372036854775808,"tls_enabled":"TRUE "}`,
		`{"docker_port":-9.223372036854775808e18}`,
		`{"docker_port":1e640000000}`,
		`{"docker_port":" 12 "}`,
		`[]`, `"x"`, ``, ` `, `{"a":1} x`, `{"image":"\u0000../../x:` + "\u2028" + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/servers/test-connection", bytes.NewReader(body))
		c := echo.New().NewContext(r, httptest.NewRecorder())
		var m *model
		var err error
		var port int64
		var tls bool
		testutil.Measure(func() {
			if m, err = readModel(c); err == nil {
				m.requiredString("image")
				m.optionalString("tag")
				port = m.requiredInt("docker_port")
				tls = m.requiredBool("tls_enabled")
				err = m.err()
			}
		}).Within(t, "readModel", testutil.AllocBound(len(body)))
		if err != nil {
			checkModelRefusal(t, err)
			return
		}
		x := m.obj["docker_port"]
		if want, ok := pydanticInt(x); !ok || want != port {
			t.Fatalf("docker_port %v accepted as %d; pydantic reads %d (ok %v)", x, port, want, ok)
		}
		if !boolSpelling(m.obj["tls_enabled"], tls) {
			t.Fatalf("tls_enabled %v accepted as %v", m.obj["tls_enabled"], tls)
		}
	})
}

// checkModelRefusal checks a 400 or a 422 with located entries.
func checkModelRefusal(t *testing.T, err error) {
	t.Helper()
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("refusal %v is not an answer", err)
	}
	switch he.Code {
	case http.StatusBadRequest:
		return
	case http.StatusUnprocessableEntity:
	default:
		t.Fatalf("refusal %d %v: want 400 or 422", he.Code, he.Message)
	}
	errs, ok := he.Message.([]fieldError)
	if !ok || len(errs) == 0 {
		t.Fatalf("422 detail %#v: want a list", he.Message)
	}
	for _, e := range errs {
		if e.Type == "" || e.Msg == "" || len(e.Loc) == 0 || e.Loc[0] != "body" {
			t.Fatalf("422 entry %+v", e)
		}
	}
	if _, err := json.Marshal(errs); err != nil {
		t.Fatalf("422 detail does not marshal: %v", err)
	}
}

// pydanticInt is what pydantic's lax int makes of a JSON value: a JSON
// integer within int64 is itself; another JSON number is read as a
// float64 (as Python's json module reads it) and is an int when that
// float is integral and within int64; a string is a decimal integer
// within int64 once trimmed. ok is false when pydantic refuses the value.
func pydanticInt(x any) (n int64, ok bool) {
	switch v := x.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f != math.Trunc(f) || f >= 1<<63 || f < -(1<<63) {
			return 0, false
		}
		return int64(f), true
	case string:
		b, ok := new(big.Int).SetString(strings.TrimSpace(v), 10)
		if !ok || !b.IsInt64() {
			return 0, false
		}
		return b.Int64(), true
	}
	return 0, false
}

// boolSpelling reports whether x is a spelling pydantic reads as b.
func boolSpelling(x any, b bool) bool {
	switch v := x.(type) {
	case bool:
		return v == b
	case json.Number:
		return string(v) == "1" && b || string(v) == "0" && !b
	case string:
		w := strings.ToLower(strings.TrimSpace(v))
		if b {
			return strings.Contains(" 1 on t true y yes ", " "+w+" ")
		}
		return strings.Contains(" 0 off f false n no ", " "+w+" ")
	}
	return false
}
