package computeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// This file reproduces FastAPI's 422 body (framework, §1.2 step 4):
// {"detail":[{"type","loc","msg","input"[,"ctx"]}, …]} with pydantic v2's
// types and messages for the checks the compute models make. Errors are
// collected in field order, like pydantic.

// fieldError is one entry of the 422 list.
type fieldError struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

func validationFailed(errs []fieldError) *echo.HTTPError {
	return echo.NewHTTPError(http.StatusUnprocessableEntity, errs)
}

// validator collects field errors.
type validator struct{ errs []fieldError }

func (v *validator) add(typ string, loc []any, msg string, input any, ctx map[string]any) {
	v.errs = append(v.errs, fieldError{Type: typ, Loc: loc, Msg: msg, Input: input, Ctx: ctx})
}

// err is the 422 for the collected errors, or nil.
func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return validationFailed(v.errs)
}

// body starts validating a request body that must be a model (an object).
func (v *validator) body(b requestBody) object {
	loc := []any{"body"}
	switch {
	case !b.present:
		v.add("missing", loc, "Field required", nil, nil)
		return object{v: v, loc: loc}
	case !b.isJSON:
		return v.model(loc, b.raw)
	}
	return v.model(loc, b.value)
}

// model checks that in is an object. FastAPI validates bodies with
// from_attributes, so a non-object is model_attributes_type, nested too.
func (v *validator) model(loc []any, in any) object {
	m, ok := in.(map[string]any)
	if !ok {
		v.add("model_attributes_type", loc, "Input should be a valid dictionary or object to extract fields from", in, nil)
	}
	return object{v: v, obj: m, loc: loc, ok: ok}
}

// object is a model being validated; a failed one yields zero values.
type object struct {
	v   *validator
	obj map[string]any
	loc []any
	ok  bool
}

func (o object) at(name string) []any { return append(slices.Clone(o.loc), name) }

func (o object) get(name string) (any, bool) {
	if !o.ok {
		return nil, false
	}
	x, ok := o.obj[name]
	return x, ok
}

// requiredString is a `str` field without a default.
func (o object) requiredString(name string) string {
	x, ok := o.get(name)
	if !ok {
		if o.ok {
			o.v.add("missing", o.at(name), "Field required", o.obj, nil)
		}
		return ""
	}
	return o.v.str(o.at(name), x)
}

// stringOr is a `str` field with a default; null is not allowed.
func (o object) stringOr(name, def string) string {
	x, ok := o.get(name)
	if !ok {
		return def
	}
	return o.v.str(o.at(name), x)
}

// nullableString is a `str | None` field; nil when null or absent.
func (o object) nullableString(name string) *string {
	x, ok := o.get(name)
	if !ok || x == nil {
		return nil
	}
	s := o.v.str(o.at(name), x)
	return &s
}

// has reports whether the field was given (null included).
func (o object) has(name string) bool {
	_, ok := o.get(name)
	return ok
}

// intOr is an `int` field with a default and optional ge/le bounds.
func (o object) intOr(name string, def int64, b bounds) int64 {
	x, ok := o.get(name)
	if !ok {
		return def
	}
	loc := o.at(name)
	n, typ := toInt(x)
	switch typ {
	case "":
	case "int_parsing":
		o.v.add(typ, loc, "Input should be a valid integer, unable to parse string as an integer", x, nil)
		return def
	case "int_from_float":
		o.v.add(typ, loc, "Input should be a valid integer, got a number with a fractional part", x, nil)
		return def
	default:
		o.v.add("int_type", loc, "Input should be a valid integer", x, nil)
		return def
	}
	if b.ge != nil && n < *b.ge {
		o.v.add("greater_than_equal", loc, fmt.Sprintf("Input should be greater than or equal to %d", *b.ge), x, map[string]any{"ge": *b.ge})
	}
	if b.le != nil && n > *b.le {
		o.v.add("less_than_equal", loc, fmt.Sprintf("Input should be less than or equal to %d", *b.le), x, map[string]any{"le": *b.le})
	}
	return n
}

// stringList is a `list[str]` field defaulting to [].
func (o object) stringList(name string) []string {
	x, ok := o.get(name)
	if !ok {
		return nil
	}
	loc := o.at(name)
	items, ok := x.([]any)
	if !ok {
		o.v.add("list_type", loc, "Input should be a valid list", x, nil)
		return nil
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		out = append(out, o.v.str(append(slices.Clone(loc), i), it))
	}
	return out
}

// stringMap is a `dict[str, str]` field defaulting to {}.
func (o object) stringMap(name string) map[string]string {
	x, ok := o.get(name)
	if !ok {
		return nil
	}
	loc := o.at(name)
	m, ok := x.(map[string]any)
	if !ok {
		o.v.add("dict_type", loc, "Input should be a valid dictionary", x, nil)
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		out[k] = o.v.str(append(slices.Clone(loc), k), m[k])
	}
	return out
}

// nested is a sub-model field with all-default fields; absent means {}.
func (o object) nested(name string) object {
	x, ok := o.get(name)
	if !ok {
		return object{v: o.v, obj: map[string]any{}, loc: o.at(name), ok: true}
	}
	return o.v.model(o.at(name), x)
}

func (v *validator) str(loc []any, x any) string {
	s, ok := x.(string)
	if !ok {
		v.add("string_type", loc, "Input should be a valid string", x, nil)
	}
	return s
}

// query reads a query parameter; FastAPI takes the last of repeated values.
func query(c echo.Context, name string) (string, bool) {
	vals, ok := c.QueryParams()[name]
	if !ok || len(vals) == 0 {
		return "", false
	}
	return vals[len(vals)-1], true
}

// requiredQuery is a query parameter without a default.
func (v *validator) requiredQuery(c echo.Context, name string) string {
	s, ok := query(c, name)
	if !ok {
		v.add("missing", []any{"query", name}, "Field required", nil, nil)
	}
	return s
}

type bounds struct{ ge, le *int64 }

func between(lo, hi int64) bounds { return bounds{ge: &lo, le: &hi} }

// toInt converts like pydantic's lax int: integers, floats without a
// fraction, bools and decimal strings. Values beyond int64 saturate (they
// fail any bound the models set). typ is "" on success, else the error
// type (int_type for other JSON kinds).
func toInt(x any) (n int64, typ string) {
	switch v := x.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, ""
		}
		f, _, err := big.ParseFloat(string(v), 10, 256, big.ToNearestEven)
		if err != nil {
			return 0, "int_type"
		}
		if !f.IsInt() {
			return 0, "int_from_float"
		}
		bi, _ := f.Int(nil)
		return saturate(bi), ""
	case bool:
		if v {
			return 1, ""
		}
		return 0, ""
	case string:
		bi, ok := new(big.Int).SetString(strings.TrimSpace(v), 10)
		if !ok {
			return 0, "int_parsing"
		}
		return saturate(bi), ""
	}
	return 0, "int_type"
}

func saturate(b *big.Int) int64 {
	switch {
	case b.IsInt64():
		return b.Int64()
	case b.Sign() > 0:
		return math.MaxInt64
	}
	return math.MinInt64
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jsonInvalid is FastAPI's answer to a body that is not JSON:
// loc ["body", <position>], input {}, ctx.error the parser's message. A
// truncated body fails at its end.
func jsonInvalid(err error, n int) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return jsonInvalidAt(max(se.Offset-1, 0), se.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return jsonInvalidAt(int64(n), "Expecting value")
	}
	return jsonInvalidAt(int64(n), err.Error())
}

func jsonInvalidAt(pos int64, msg string) error {
	return validationFailed([]fieldError{{
		Type: "json_invalid", Loc: []any{"body", pos}, Msg: "JSON decode error",
		Input: map[string]any{}, Ctx: map[string]any{"error": msg},
	}})
}

// requiredInt is an `int` field without a default, with bounds.
func (o object) requiredInt(name string, b bounds) int64 {
	if _, ok := o.get(name); !ok {
		if o.ok {
			o.v.add("missing", o.at(name), "Field required", o.obj, nil)
		}
		return 0
	}
	return o.intOr(name, 0, b)
}

// patternString is a `str` field with a default and a pattern constraint
// (pydantic's string_pattern_mismatch).
func (o object) patternString(name, def string, re *regexp.Regexp) string {
	x, ok := o.get(name)
	if !ok {
		return def
	}
	s, isStr := x.(string)
	if !isStr {
		o.v.str(o.at(name), x)
		return def
	}
	if !re.MatchString(s) {
		o.v.add("string_pattern_mismatch", o.at(name), fmt.Sprintf("String should match pattern '%s'", re), x,
			map[string]any{"pattern": re.String()})
		return def
	}
	return s
}
