package computeapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// streamText runs pieces through a utf8Stream and writeJSONEscaped, as
// contentAnswer does; err is the first invalid sequence.
func streamText(pieces [][]byte) (string, error) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	var u utf8Stream
	for _, p := range pieces {
		head, body, err := u.next(p)
		if err != nil {
			return out.String(), err
		}
		_ = writeJSONEscaped(w, head)
		_ = writeJSONEscaped(w, body)
	}
	if err := u.end(); err != nil {
		return out.String(), err
	}
	_ = w.Flush()
	return out.String(), nil
}

// splits cuts s into pieces at every pair of positions (and whole).
func splits(s []byte) [][][]byte {
	out := [][][]byte{{s}}
	for i := 0; i <= len(s); i++ {
		for j := i; j <= len(s); j++ {
			out = append(out, [][]byte{s[:i], s[i:j], s[j:]})
		}
	}
	return out
}

// encodingJSON is s inside a JSON string as writeJSON's encoder writes it.
func encodingJSON(s string) string {
	m := marshalString(s)
	return m[1 : len(m)-1]
}

func TestJSONStringEscapes(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello", "hello"},
		{"quote and backslash", `a"b\c`, `a\"b\\c`},
		{"named controls", "\b\f\n\r\t", `\b\f\n\r\t`},
		{"other controls", "\x00\x01\x1f", `\u0000\u0001\u001f`},
		{"DEL stays", "\x7f", "\x7f"},
		{"HTML stays", "<a href='x'>&</a>", "<a href='x'>&</a>"},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"neighbours of the separators stay", "\u2027\u202a", "\u2027\u202a"},
		{"two-, three- and four-byte characters", "é€😀", "é€😀"},
		{"the largest character", "\U0010FFFF", "\U0010FFFF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if want := encodingJSON(tt.in); want != tt.want {
				t.Fatalf("the table disagrees with encoding/json: %q vs %q", tt.want, want)
			}
			for _, pieces := range splits([]byte(tt.in)) {
				got, err := streamText(pieces)
				if err != nil || got != tt.want {
					t.Fatalf("pieces %q: got %q, %v; want %q", pieces, got, err, tt.want)
				}
			}
		})
	}
}

// TestJSONStringMatchesEncodingJSON feeds random valid text, cut at random
// places, and wants exactly encoding/json's escaping.
func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	alphabet := []rune("aZ \"\\/\b\f\n\r\t\x00\x1f\x7f<>&é€😀\u2028\u2029\U0010FFFF\uFFFD")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		s := []byte(b.String())
		var pieces [][]byte
		for len(s) > 0 {
			n := rng.IntN(len(s)) + 1
			pieces, s = append(pieces, s[:n]), s[n:]
		}
		got, err := streamText(pieces)
		if want := encodingJSON(b.String()); err != nil || got != want {
			t.Fatalf("text %q in pieces %q: got %q, %v; want %q", b.String(), pieces, got, err, want)
		}
	}
}

func TestUTF8StreamInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want invalidUTF8Error
	}{
		{"a stray continuation byte", "ab\x80c", invalidUTF8Error{Offset: 2, Byte: 0x80}},
		{"an impossible byte", "\xff", invalidUTF8Error{Offset: 0, Byte: 0xff}},
		{"a PNG", "\x89PNG", invalidUTF8Error{Offset: 0, Byte: 0x89}},
		{"a sequence cut by a plain byte", "x\xe2\x82y", invalidUTF8Error{Offset: 1, Byte: 0xe2}},
		{"a sequence cut by the end", "xy\xe2\x82", invalidUTF8Error{Offset: 2, Byte: 0xe2}},
		{"an overlong encoding", "a\xc0\xafb", invalidUTF8Error{Offset: 1, Byte: 0xc0}},
		{"a surrogate", "a\xed\xa0\x80b", invalidUTF8Error{Offset: 1, Byte: 0xed}},
		{"beyond U+10FFFF", "a\xf4\x90\x80\x80", invalidUTF8Error{Offset: 1, Byte: 0xf4}},
		{"after valid characters", "é€😀\xc3(", invalidUTF8Error{Offset: 9, Byte: 0xc3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, pieces := range splits([]byte(tt.in)) {
				_, err := streamText(pieces)
				var got *invalidUTF8Error
				if !errors.As(err, &got) {
					t.Fatalf("pieces %q: got %v, want %+v", pieces, err, tt.want)
				}
				if diff := cmp.Diff(tt.want, *got); diff != "" {
					t.Fatalf("pieces %q (-want +got):\n%s", pieces, diff)
				}
			}
			if i := invalidUTF8At([]byte(tt.in)); i != int(tt.want.Offset) { // what /exec reports for the same output
				t.Errorf("invalidUTF8At: got %d, want %d", i, tt.want.Offset)
			}
		})
	}
}

func TestMarshalString(t *testing.T) {
	for in, want := range map[string]string{
		"a/b c.txt": `"a/b c.txt"`, `it's "x"`: `"it's \"x\""`, "<&>": `"<&>"`, "bad\xff": `"bad\ufffd"`,
	} {
		if got := marshalString(in); got != want {
			t.Errorf("marshalString(%q): got %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(marshalString(in)), &back); err != nil {
			t.Errorf("marshalString(%q) is not JSON: %v", in, err)
		}
	}
}
