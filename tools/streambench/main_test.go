package main

import (
	"testing"
	"time"
)

// The echo is matched in the printable text of the output: escape
// sequences never count, even when a chunk boundary cuts one.
func TestStripper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"plain", []string{"a"}, "a"},
		{"csi around", []string{"\x1b[?25l\x1b[12;5Hb\x1b[?25h"}, "b"},
		{"sgr letters", []string{"\x1b[1;31mx\x1b[m"}, "x"},
		{"charset", []string{"\x1b(Bc\x1b(0"}, "c"},
		{"osc title with letters", []string{"\x1b]2;abc def\x07d"}, "d"},
		{"osc ended by ST", []string{"\x1b]0;zzz\x1b\\e"}, "e"},
		{"csi cut between chunks", []string{"\x1b[", "12;34", "Hf"}, "f"},
		{"osc cut between chunks", []string{"\x1b]2;ab", "cd\x07", "g"}, "g"},
		{"controls dropped", []string{"\r\n\x08h"}, "h"},
	} {
		var s stripper
		got := ""
		for _, c := range tc.chunks {
			got += string(s.text([]byte(c)))
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStat(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := stat("x", d)
	if s.N != 100 || s.P50 != int64(51*time.Millisecond) || s.P99 != int64(100*time.Millisecond) ||
		s.Max != int64(100*time.Millisecond) || s.Mean != int64(50500*time.Microsecond) {
		t.Errorf("stat = %+v", s)
	}
	if e := stat("empty", nil); e.N != 0 || e.P50 != 0 {
		t.Errorf("stat of nothing = %+v", e)
	}
}
