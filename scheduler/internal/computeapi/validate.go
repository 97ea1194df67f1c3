package computeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
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
//
// A number is never expanded: its digits and exponent are read as text
// (numberToInt, stringToInt), so 1e640000000 costs what its 11 bytes
// cost and a string of a million digits one pass over it.
func toInt(x any) (n int64, typ string) {
	switch v := x.(type) {
	case json.Number:
		return numberToInt(string(v))
	case bool:
		if v {
			return 1, ""
		}
		return 0, ""
	case string:
		return stringToInt(v)
	}
	return 0, "int_type"
}

// maxInt64Digits is how many decimal digits the largest int64 has; an
// integer with more saturates.
const maxInt64Digits = 19

// numberToInt converts a JSON number (encoding/json checked its syntax:
// -?int(.frac)?([eE][+-]?exp)?). The value is mantissa × 10^exp, the
// mantissa's digits stripped of leading and trailing zeros: with a
// negative exponent left it has a fraction; otherwise it has
// len(mantissa)+exp digits, and more than 19 saturate.
func numberToInt(s string) (int64, string) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, ""
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	exp, ok := clampedExponent(expText)
	if !ok {
		return 0, "int_type"
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return 0, "" // zero, whatever its exponent
	}
	exp -= int64(len(frac))
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	if exp < 0 {
		return 0, "int_from_float"
	}
	if int64(len(trimmed))+exp > maxInt64Digits {
		return saturated(neg), ""
	}
	u, err := strconv.ParseUint(trimmed+strings.Repeat("0", int(exp)), 10, 64)
	if err != nil {
		return saturated(neg), ""
	}
	return signed(u, neg), ""
}

// clampedExponent reads an exponent's text ("" is 0), clamped to ±1e9: any
// exponent that large saturates or underflows the same way, and the sum
// with a mantissa's length cannot overflow.
func clampedExponent(t string) (int64, bool) {
	if t == "" {
		return 0, true
	}
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimLeft(t, "+-")
	if t == "" {
		return 0, false
	}
	var e int64
	for _, c := range []byte(t) {
		if c < '0' || c > '9' {
			return 0, false
		}
		if e < 1e9 {
			e = e*10 + int64(c-'0')
		}
	}
	e = min(e, 1e9)
	if neg {
		return -e, true
	}
	return e, true
}

// stringToInt converts a decimal string as big.Int.SetString(s, 10) would
// read it after trimming spaces (an optional sign, then digits), without
// building the number: more than 19 significant digits saturate.
func stringToInt(s string) (int64, string) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	if neg || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, "int_parsing"
	}
	digits := strings.TrimLeft(s, "0")
	if len(digits) > maxInt64Digits {
		return saturated(neg), ""
	}
	if digits == "" {
		return 0, ""
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return saturated(neg), ""
	}
	return signed(u, neg), ""
}

// signed is ±u, saturated to int64.
func signed(u uint64, neg bool) int64 {
	switch {
	case neg && u > math.MaxInt64:
		return math.MinInt64
	case neg:
		return -int64(u)
	case u > math.MaxInt64:
		return math.MaxInt64
	}
	return int64(u)
}

func saturated(neg bool) int64 {
	if neg {
		return math.MinInt64
	}
	return math.MaxInt64
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
