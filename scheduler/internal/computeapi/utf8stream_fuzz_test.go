package computeapi

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzUTF8Stream fuzzes the UTF-8 check of streamed file text
// (jsonstream.go, utf8Stream) with any bytes cut into pieces anywhere.
// Properties, whatever the cuts:
//   - valid UTF-8 passes whole: what comes out is exactly what went in;
//   - invalid UTF-8 is an *invalidUTF8Error at the first invalid byte's
//     offset, naming that byte; what came out before is a prefix of the
//     input.
func FuzzUTF8Stream(f *testing.F) {
	for _, s := range []struct{ data, cuts string }{
		{"hello", "\x02"},
		{"é€😀", "\x01\x01\x01\x01\x01\x01\x01\x01\x01"},
		{"a\xe2\x82", "\x01\x01"},
		{"a\xffb", "\x00"},
		{"\xf0\x9f\x98\x80\xf0\x9f\x98", "\x03\x02"},
		{"\xed\xa0\x80", "\x01"}, // a surrogate, never valid UTF-8
		{"\xc0\xaf", "\x01"},     // an overlong '/'
		{"\x00\x00\x00", "\x01"},
		{"\xf4\x90\x80\x80", "\x02"}, // above U+10FFFF
	} {
		f.Add([]byte(s.data), []byte(s.cuts))
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var u utf8Stream
		var out []byte
		var err error
		rest := data
		for i := 0; len(rest) > 0 && err == nil; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(int(cuts[i])%8, len(rest))
			}
			var head, body []byte
			head, body, err = u.next(rest[:n])
			out = append(append(out, head...), body...)
			rest = rest[n:]
		}
		if err == nil {
			err = u.end()
		}
		if !bytes.HasPrefix(data, out) {
			t.Fatalf("out %q is not a prefix of %q", out, data)
		}
		bad := firstInvalid(data)
		if bad < 0 {
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("valid %q: got %q, %v", data, out, err)
			}
			return
		}
		var ie *invalidUTF8Error
		if !errors.As(err, &ie) {
			t.Fatalf("invalid %q (at %d): got %v, want an invalidUTF8Error", data, bad, err)
		}
		if ie.Offset != int64(bad) || ie.Byte != data[bad] {
			t.Fatalf("invalid %q: error at %d (0x%02x), want %d (0x%02x)", data, ie.Offset, ie.Byte, bad, data[bad])
		}
	})
}

// firstInvalid is the offset of the first byte of b that starts no valid
// UTF-8 sequence, or -1.
func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}
