package computeapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzReadWriteBody fuzzes the streaming parser of PUT …/files/content
// (filebody.go) against readBody, which decodes with encoding/json.
// Properties:
//   - a refusal is an answer: 400, 413, or a 422 json_invalid inside the
//     body;
//   - it means what readBody means: a body the stream accepts, readBody
//     accepts with the same value, and the spooled content is the value's
//     "content" string byte for byte; a UTF-8 body readBody accepts, the
//     stream accepts; where both refuse a UTF-8 body, both answer 422;
//   - it costs at most allocBound of the body's length.
func FuzzReadWriteBody(f *testing.F) {
	for _, s := range []string{
		`{"path":"a","content":"hi"}`,
		" {\n\t\"content\" : \"hi\" ,\r\n \"path\":\"a\" } \n",
		`{"x":{"y":[1,"}",{"z":null}]},"path":"a","n":-1.5e3,"t":true,"content":"c","f":false}`,
		`{"content":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\u0000"}`,
		`{"content":"\ud83d\ude00\uD83D\uDE00\ud83d\ud83d\ude00\ude00x\ud83d\n"}`,
		`{"content":"one","content":"two"}`,
		`{"content":"one","content":null}`,
		`{"path":"../../../etc/shadow","content":"x"}`,
		"{\"content\":\"a\xffb\"}",
		"{\"content\":\"a\xe2\x82\\n\"}",
		"{\"content\":\"a\nb\"}",
		`{"path":"a","content":"abc`,
		`{"path":nul}`,
		`{"content":"\u12x4"}`,
		`{"path":"a"} {}`,
		`{"n":1e640000000}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"content":"` + "\u2028\u2029é😀" + `"}`,
	} {
		f.Add([]byte(s))
	}
	spoolDir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Limits the fuzzer's inputs stay below: what is compared is the
		// parse, not the bounds (filebody_test.go checks those).
		lim := writeBodyLimits{content: 1 << 16, raw: 1 << 20, other: 1 << 16, spoolDir: spoolDir}
		if len(data) > lim.other {
			t.Skip("beyond the limits under test")
		}
		r := httptest.NewRequest(http.MethodPut, "/workspaces/ws1/files/content", bytes.NewReader(data))
		var wb writeBody
		var err error
		measure(func() { wb, err = readWriteBody(r, lim) }).Within(t, "readWriteBody", allocBound(len(data)))
		defer wb.close()
		rb, rerr := readBody(httptest.NewRequest(http.MethodPut, "/", bytes.NewReader(data)))
		if rerr != nil && refusal(t, rerr, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity).Code ==
			http.StatusRequestEntityTooLarge {
			return // readBody's value count bound (guard.go), which the stream need not share
		}

		if err != nil {
			he := refusal(t, err, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
			if he.Code == http.StatusUnprocessableEntity {
				jsonInvalidPos(t, he, len(data))
			}
			if !utf8.Valid(data) {
				return // the stream refuses what is not UTF-8; encoding/json replaces it
			}
			if rerr == nil {
				t.Fatalf("stream refused %d %v a body readBody accepts: %q", he.Code, he.Message, data)
			}
			if rs := refusal(t, rerr, http.StatusUnprocessableEntity); rs.Code != he.Code {
				t.Fatalf("stream answers %d, readBody %d, for %q", he.Code, rs.Code, data)
			}
			return
		}
		if rerr != nil {
			t.Fatalf("stream accepted a body readBody refuses (%v): %q", rerr, data)
		}
		if diff := cmp.Diff(rb.value, wb.body.value); diff != "" {
			t.Fatalf("stream and readBody disagree (-readBody +stream):\n%s", diff)
		}
		obj, _ := rb.value.(map[string]any)
		want, isString := obj["content"].(string)
		if isString != (wb.content != nil) {
			t.Fatalf("content %q (string %v): spool %v", obj["content"], isString, wb.content != nil)
		}
		if wb.content == nil {
			return
		}
		in, err := wb.content.Reader()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(in)
		if err != nil || string(got) != want {
			t.Fatalf("spooled content %q (%v), want %q", got, err, want)
		}
	})
}
