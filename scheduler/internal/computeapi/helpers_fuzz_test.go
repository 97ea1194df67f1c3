package computeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/labstack/echo/v4"

	"berth/shared/testutil"
)

// Helpers of the fuzz targets (*_fuzz_test.go). `go test` runs each
// target's seed corpus (testdata/fuzz/FuzzXxx) as a unit test;
// scripts/fuzz.sh runs each target for a bounded time.

// measure and allocBound are testutil's, under short names.
var (
	measure    = testutil.Measure
	allocBound = testutil.AllocBound
)

// refusal checks that err is an answer (an *echo.HTTPError) with one of
// the statuses and returns it.
func refusal(t *testing.T, err error, statuses ...int) *echo.HTTPError {
	t.Helper()
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("refusal %v (%T) is not an answer with a status", err, err)
	}
	if !slices.Contains(statuses, he.Code) {
		t.Fatalf("refusal %d %v: want one of %v", he.Code, he.Message, statuses)
	}
	if _, err := json.Marshal(map[string]any{"detail": he.Message}); err != nil {
		t.Fatalf("refusal %d: its detail does not marshal: %v", he.Code, err)
	}
	return he
}

// checkFieldErrors checks a 422's detail: a non-empty list of entries,
// each with a type, a message and a location under root ("body",
// "query").
func checkFieldErrors(t *testing.T, he *echo.HTTPError, root string) []fieldError {
	t.Helper()
	errs, ok := he.Message.([]fieldError)
	if !ok || len(errs) == 0 {
		t.Fatalf("422 detail %#v: want a non-empty list of field errors", he.Message)
	}
	for _, e := range errs {
		if e.Type == "" || e.Msg == "" || len(e.Loc) == 0 || e.Loc[0] != root {
			t.Fatalf("field error %+v: want a type, a message and a location under %q", e, root)
		}
	}
	return errs
}

// jsonInvalidPos checks that a 422 is one json_invalid entry located in
// the body, at a position within its n bytes, and returns the position.
func jsonInvalidPos(t *testing.T, he *echo.HTTPError, n int) int64 {
	t.Helper()
	errs := checkFieldErrors(t, he, "body")
	if len(errs) != 1 || errs[0].Type != "json_invalid" || len(errs[0].Loc) != 2 {
		t.Fatalf("422 %+v: want one json_invalid entry", errs)
	}
	pos, ok := errs[0].Loc[1].(int64)
	if !ok || pos < 0 || pos > int64(n) {
		t.Fatalf("json_invalid at %v: want a position within the body's %d bytes", errs[0].Loc[1], n)
	}
	return pos
}

// decodeNumbers decodes JSON as readBody does (numbers as json.Number).
func decodeNumbers(data []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := dec.Decode(&v)
	return v, err
}
