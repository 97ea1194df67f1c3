package computeapi

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzWriteJSONEscaped fuzzes the streamed JSON string writer of file reads
// (jsonstream.go, writeJSONEscaped) against encoding/json. Properties, for
// any valid UTF-8 text cut at any character boundary:
//   - the pieces written one after the other, in quotes, are byte for byte
//     what marshalString (encoding/json) writes for the whole text;
//   - that string decodes back to the text.
func FuzzWriteJSONEscaped(f *testing.F) {
	for _, s := range []string{
		"plain", `"quoted" \back\slash`, "\x00\x01\x1f\x7f", "\b\f\n\r\t", "<html>&amp;</html>",
		"\u2028\u2029", "é€😀", "\xe2\x80", "a\xe2\x80\xa8b", "../../etc/passwd",
	} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, s string, cut uint8) {
		if !utf8.ValidString(s) {
			t.Skip("the writer takes valid UTF-8 only (utf8Stream checks it first)")
		}
		at := min(int(cut), len(s))
		for at > 0 && at < len(s) && !utf8.RuneStart(s[at]) {
			at--
		}
		var b strings.Builder
		w := bufio.NewWriter(&b)
		_ = w.WriteByte('"')
		for _, piece := range []string{s[:at], s[at:]} {
			if err := writeJSONEscaped(w, []byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.WriteByte('"')
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if want := marshalString(s); b.String() != want {
			t.Fatalf("writeJSONEscaped(%q): %s, encoding/json writes %s", s, b.String(), want)
		}
		var back string
		if err := json.Unmarshal([]byte(b.String()), &back); err != nil || back != s {
			t.Fatalf("%s decodes to %q (%v), want %q", b.String(), back, err, s)
		}
	})
}
