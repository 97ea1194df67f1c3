package computeapi

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// FuzzToInt fuzzes the integer conversion of every int field (validate.go,
// toInt), with JSON numbers and numeric strings. Properties:
//   - it never expands a number: 1e640000000 costs what its 11 bytes cost
//     (allocBound), in well under fuzzTimeBound;
//   - an accepted value is exact: where the number is a small enough
//     integer, it is that integer; an integer beyond int64 saturates with
//     its sign (or is refused);
//   - a refusal names a pydantic error type.
func FuzzToInt(f *testing.F) {
	for _, s := range []string{
		"0", "-0", "42", "-42", "1e3", "1E+3", "1.0", "1.5", "-1.5e1", "1e640000000", "-1e640000000", "1e-640000000",
		"9223372036854775807", "9223372036854775808", "-9223372036854775809", "1.00000000000000000001e20",
		"123456789012345678901234567890", "0.0000000000000000000000000001e28", "1e18446744073709551616",
		"12e-1", "120e-1", " 7 ", "+7", "0x10", "1_000", "٣", "1e", "",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, asNumber bool) {
		var x any = s
		if asNumber {
			if !isJSONNumber(s) {
				t.Skip("not a JSON number")
			}
			x = json.Number(s)
		}
		var n int64
		var typ string
		measure(func() { n, typ = toInt(x) }).Within(t, "toInt", allocBound(len(s)))
		if typ != "" {
			if !strings.HasPrefix(typ, "int_") {
				t.Fatalf("toInt(%q): error type %q, want a pydantic int_* type", s, typ)
			}
			return
		}
		want, exact := exactInt(strings.TrimSpace(s), asNumber)
		switch {
		case !exact:
		case want.IsInt64():
			if n != want.Int64() {
				t.Fatalf("toInt(%q) = %d, want %s", s, n, want)
			}
		case want.Sign() > 0 && n != math.MaxInt64, want.Sign() < 0 && n != math.MinInt64:
			t.Fatalf("toInt(%q) = %d, want %s saturated", s, n, want)
		}
	})
}

// isJSONNumber reports whether s is a JSON number as encoding/json
// produces json.Number values.
func isJSONNumber(s string) bool {
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil && string(n) == s
}

// exactInt is the integer s stands for, computed with big.Rat, when s is
// a decimal integer (or, asNumber, a JSON number) small enough to expand
// safely; exact is false otherwise (not an integer, or too big to check).
func exactInt(s string, asNumber bool) (v *big.Int, exact bool) {
	if !asNumber {
		if len(s) > 400 {
			return nil, false
		}
		b, ok := new(big.Int).SetString(s, 10)
		return b, ok
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if len(mant) > 400 {
		return nil, false
	}
	if hasExp {
		e, err := strconv.Atoi(exp)
		if err != nil || e > 400 || e < -400 {
			return nil, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || !r.IsInt() {
		return nil, false
	}
	return r.Num(), true
}
