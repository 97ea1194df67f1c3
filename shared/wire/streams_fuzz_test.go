package wire

import (
	"testing"
)

// FuzzTTYExitReason fuzzes the TTY stream's close reason (streams.go):
// whatever reason a peer sends, a code read from it is the code a reason
// written for it reads back as; every int round-trips.
func FuzzTTYExitReason(f *testing.F) {
	for _, s := range []string{"exit 0", "exit -1", "exit 255", "exit +7", "exit 99999999999999999999", "exit ", "exit", "Exit 1",
		"exit 1 ", "exit 0x10", "exit ٣", "normal closure"} {
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, reason string, code int) {
		if got, ok := ParseTTYExitReason(TTYExitReason(code)); !ok || got != code {
			t.Fatalf("exit %d reads back as %d, %v", code, got, ok)
		}
		n, ok := ParseTTYExitReason(reason)
		if !ok {
			return
		}
		if again, ok := ParseTTYExitReason(TTYExitReason(n)); !ok || again != n {
			t.Fatalf("%q: code %d does not round-trip (%d, %v)", reason, n, again, ok)
		}
	})
}

// FuzzExecRawFrame fuzzes the raw exec's frame header (execraw.go): any
// 8 bytes parse, and a header written for a kind and a length in
// 0..2³¹-1 reads back as them.
func FuzzExecRawFrame(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 5}, byte(2), 1<<20)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, byte(0), -1)
	f.Add([]byte{}, byte(3), 1<<31-1)
	f.Fuzz(func(t *testing.T, raw []byte, kind byte, n int) {
		var h [ExecRawFrameHeader]byte
		copy(h[:], raw)
		k, m := ParseExecRawFrame(h)
		if k != h[0] || m != uint32(h[4])<<24|uint32(h[5])<<16|uint32(h[6])<<8|uint32(h[7]) {
			t.Fatalf("%x parses as %d, %d", h, k, m)
		}
		if n < 0 || n > 1<<31-1 {
			return
		}
		if k2, m2 := ParseExecRawFrame(ExecRawFrame(kind, n)); k2 != kind || int(m2) != n {
			t.Fatalf("frame %d, %d reads back as %d, %d", kind, n, k2, m2)
		}
	})
}
