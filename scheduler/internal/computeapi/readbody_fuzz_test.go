package computeapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzReadBody fuzzes the JSON body reader of every route with a body
// (guard.go, readBody). Properties:
//   - a refusal is an answer: 400, 413, or a 422 json_invalid located
//     inside the body;
//   - with a JSON content type (or none), a non-empty body is accepted
//     exactly when encoding/json's own validator (json.Valid) accepts it;
//   - an accepted value survives a marshal/decode round trip unchanged;
//   - any other content type keeps the text as it came;
//   - reading costs at most allocBound of the body's length.
func FuzzReadBody(f *testing.F) {
	for _, s := range []struct{ body, ctype string }{
		{`{"session_id":"s","config":{"tier":"starter"}}`, ""},
		{`[{},{},{},{}]`, "application/json"},
		{`{"n":1e640000000,"m":-1e-640000000}`, ""},
		{`{"a":` + string(bytes.Repeat([]byte("["), 2000)), ""},
		{"{\"a\":\"\x00\xff\xfe\"}", ""},
		{`{"path":"../../etc/passwd","p\u0000":"\ud83d"}`, "application/merge-patch+json"},
		{"\ufeff{}", ""},
		{`{} {}`, ""},
		{" \n\t", ""},
		{`{"a":1}`, "text/plain"},
		{`{"a":1}`, "application/json; charset=utf-8"},
		{`{"a":1}`, "application/json; =bad"},
		{`"é😀` + "\u2028" + `"`, ""},
		{`123456789012345678901234567890e-5`, ""},
	} {
		f.Add([]byte(s.body), s.ctype)
	}
	f.Fuzz(func(t *testing.T, data []byte, ctype string) {
		r := httptest.NewRequest(http.MethodPost, "/workspaces", bytes.NewReader(data))
		r.Header.Del("Content-Type")
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		var b requestBody
		var err error
		measure(func() { b, err = readBody(r) }).Within(t, "readBody", allocBound(len(data)))

		isJSON := jsonContentType(ctype)
		if err != nil {
			he := refusal(t, err, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
			if he.Code == http.StatusUnprocessableEntity {
				jsonInvalidPos(t, he, len(data))
				if !isJSON || json.Valid(data) {
					t.Fatalf("422 for a body json.Valid accepts (content type %q): %q", ctype, data)
				}
			}
			return
		}
		switch {
		case len(data) == 0:
			if b.present {
				t.Fatalf("empty body read as present: %+v", b)
			}
		case !isJSON:
			if !b.present || b.isJSON || b.raw != string(data) {
				t.Fatalf("content type %q: got %+v, want the raw text", ctype, b)
			}
		default:
			if !json.Valid(data) {
				t.Fatalf("accepted a body json.Valid refuses: %q", data)
			}
			if !b.present || !b.isJSON {
				t.Fatalf("got %+v, want a JSON body", b)
			}
			again, err := json.Marshal(b.value)
			if err != nil {
				t.Fatalf("accepted value does not marshal: %v", err)
			}
			back, err := decodeNumbers(again)
			if err != nil {
				t.Fatalf("re-decode of %s: %v", again, err)
			}
			if diff := cmp.Diff(b.value, back); diff != "" {
				t.Fatalf("round trip changed the value (-read +again):\n%s", diff)
			}
		}
	})
}
