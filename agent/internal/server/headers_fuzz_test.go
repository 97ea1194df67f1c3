package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/labstack/echo/v4"

	"berth/shared/testutil"
	"berth/shared/wire"
)

// headerSeeds are request headers of the raw exec and the TTY handshake.
var headerSeeds = []string{
	`{"cmd":["bash","-c","cat > f"],"user":"dev","working_dir":"/home/dev","env":{"A":"1"},"timeout_seconds":30}`,
	`{"cmd":["sh"],"rows":24,"cols":80}`,
	`{"cmd":[]}`, `{"cmd":null}`, `{}`, ``, `null`, `[]`,
	`{"cmd":["x"],"stdin":"aGk="}`,
	`{"cmd":["x"],"priviledged":true}`,
	`{"cmd":["x"],"timeout_seconds":1e640000000,"rows":65536,"cols":-1}`,
	`{"cmd":["x\u0000y"],"user":"root","working_dir":"../../.."} trailing`,
	`{"cmd":["x"],"cmd":["y"]}`,
	"{\"cmd\":[\"\xff\xfe\"]}",
}

// FuzzExecHeader fuzzes the raw exec's X-Berth-Exec header decoding
// (execraw.go, decodeExecHeader). Properties: a refusal is a 400 with a
// message; an accepted request has a command and no stdin (the input is
// the body) and survives a marshal/decode round trip unchanged; decoding
// costs at most testutil.AllocBound of the header.
func FuzzExecHeader(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		var req wire.ExecRequest
		var err error
		testutil.Measure(func() { req, err = decodeExecHeader(h) }).Within(t, "decodeExecHeader", testutil.AllocBound(len(h)))
		if err != nil {
			badRequestOnly(t, err)
			return
		}
		if len(req.Cmd) == 0 || len(req.Stdin) != 0 {
			t.Fatalf("accepted %+v: want a command and no stdin", req)
		}
		var again wire.ExecRequest
		roundTrip(t, req, &again)
		if diff := cmp.Diff(req, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-decoded +again):\n%s", diff)
		}
	})
}

// FuzzTTYHeader fuzzes the TTY handshake's X-Berth-TTY header decoding
// (tty.go, decodeTTYRequest). Properties as FuzzExecHeader's: a refusal is
// a 400, an accepted request round-trips, decoding is bounded.
func FuzzTTYHeader(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		var req wire.TTYRequest
		var err error
		testutil.Measure(func() { req, err = decodeTTYRequest(h) }).Within(t, "decodeTTYRequest", testutil.AllocBound(len(h)))
		if err != nil {
			badRequestOnly(t, err)
			return
		}
		var again wire.TTYRequest
		roundTrip(t, req, &again)
		if diff := cmp.Diff(req, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-decoded +again):\n%s", diff)
		}
	})
}

// badRequestOnly checks that err is a 400 answer with a message.
func badRequestOnly(t *testing.T, err error) {
	t.Helper()
	var he *echo.HTTPError
	if !errors.As(err, &he) || he.Code != http.StatusBadRequest {
		t.Fatalf("refusal %v: want a 400", err)
	}
	if msg, ok := he.Message.(string); !ok || msg == "" {
		t.Fatalf("refusal %v: want a message", he.Message)
	}
}

// roundTrip marshals v and decodes it strictly into out.
func roundTrip(t *testing.T, v, out any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %+v: %v", v, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}
