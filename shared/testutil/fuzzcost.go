package testutil

import (
	"runtime"
	"testing"
	"time"
)

// Cost is what one call cost, for the budgets the fuzz targets assert:
// bytes allocated (by the whole process, so a little noise) and wall time.
type Cost struct {
	Alloc uint64
	Took  time.Duration
}

// Measure runs fn and returns its cost.
func Measure(fn func()) Cost {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	fn()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return Cost{Alloc: after.TotalAlloc - before.TotalAlloc, Took: took}
}

// FuzzTimeBound is the time one fuzzed call may take: generous, since
// -race and a loaded 2-core machine are slow, while what it catches (a
// 1e640000000 expanded, a quadratic parse) takes seconds.
const FuzzTimeBound = 2 * time.Second

// Within fails t when the call allocated more than maxAlloc bytes or took
// longer than FuzzTimeBound.
func (c Cost) Within(t testing.TB, what string, maxAlloc uint64) {
	t.Helper()
	if c.Alloc > maxAlloc {
		t.Errorf("%s allocated %d bytes, want at most %d", what, c.Alloc, maxAlloc)
	}
	if c.Took > FuzzTimeBound {
		t.Errorf("%s took %s, want at most %s", what, c.Took, FuzzTimeBound)
	}
}

// AllocBound is what handling n bytes of input may allocate: a constant
// for the machinery (a router, a recorder, a decoder), plus a generous
// factor per input byte (a JSON value decoded into maps and interfaces
// costs some tens of bytes per byte).
func AllocBound(n int) uint64 { return 8<<20 + 256*uint64(n) }
