package computeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
)

// smallLimits are writeBodyLimits small enough to reach in a test.
func smallLimits(t *testing.T) writeBodyLimits {
	return writeBodyLimits{content: 64, raw: 6*64 + 256, other: 256, spoolDir: t.TempDir()}
}

// parseBody runs readWriteBody on body sent as contentType ("" = none).
func parseBody(t *testing.T, body io.Reader, contentType string, lim writeBodyLimits) (writeBody, string, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPut, "/workspaces/ws1/files/content", body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	wb, err := readWriteBody(r, lim)
	if err != nil || wb.content == nil || wb.content.Size() > lim.content {
		return wb, "", err
	}
	in, err := wb.content.Reader()
	if err != nil {
		return wb, "", err
	}
	b, err := io.ReadAll(in)
	return wb, string(b), err
}

// answer is the status and JSON body an error stands for.
func answer(t *testing.T, err error) (int, string) {
	t.Helper()
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("error %v is not an answer", err)
	}
	b, _ := json.Marshal(map[string]any{"detail": he.Message})
	return he.Code, string(b)
}

func TestReadWriteBody(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		wantValue   any    // the body as the validator sees it
		wantContent string // the spooled content
		noContent   bool   // no spool: content absent or not a string
	}{
		{name: "path then content", body: `{"path":"a","content":"hi"}`,
			wantValue: map[string]any{"path": "a", "content": "hi"}, wantContent: "hi"},
		{name: "content then path, with space", body: " {\n\t\"content\" : \"hi\" ,\r\n \"path\":\"a\" } \n",
			wantValue: map[string]any{"path": "a", "content": "hi"}, wantContent: "hi"},
		{name: "extra members of every kind", body: `{"x":{"y":[1,"}",{"z":null}]},"path":"a","n":-1.5e3,"t":true,"content":"c","f":false}`,
			wantValue: map[string]any{"x": map[string]any{"y": []any{json.Number("1"), "}", map[string]any{"z": nil}}},
				"path": "a", "n": json.Number("-1.5e3"), "t": true, "content": "c", "f": false},
			wantContent: "c"},
		{name: "every escape", body: `{"content":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\u0000"}`,
			wantValue: map[string]any{"content": "\"\\/\b\f\n\r\tAé€\x00"}, wantContent: "\"\\/\b\f\n\r\tAé€\x00"},
		{name: "a surrogate pair, upper and lower case hex", body: `{"content":"\ud83d\ude00\uD83D\uDE00"}`,
			wantValue: map[string]any{"content": "😀😀"}, wantContent: "😀😀"},
		{name: "a lone high surrogate is U+FFFD", body: `{"content":"a\ud83db"}`,
			wantValue: map[string]any{"content": "a\uFFFDb"}, wantContent: "a\uFFFDb"},
		{name: "a high surrogate before another escape", body: `{"content":"\ud83d\n"}`,
			wantValue: map[string]any{"content": "\uFFFD\n"}, wantContent: "\uFFFD\n"},
		{name: "two high surrogates", body: `{"content":"\ud83d\ud83d\ude00"}`,
			wantValue: map[string]any{"content": "\uFFFD😀"}, wantContent: "\uFFFD😀"},
		{name: "a lone low surrogate is U+FFFD", body: `{"content":"\ude00x"}`,
			wantValue: map[string]any{"content": "\uFFFDx"}, wantContent: "\uFFFDx"},
		{name: "raw UTF-8 of every length", body: `{"content":"é€😀` + "\u2028" + `"}`,
			wantValue: map[string]any{"content": "é€😀\u2028"}, wantContent: "é€😀\u2028"},
		{name: "the last of repeated contents wins", body: `{"content":"one","content":"two"}`,
			wantValue: map[string]any{"content": "two"}, wantContent: "two"},
		{name: "a string content replaced by null", body: `{"content":"one","content":null}`,
			wantValue: map[string]any{"content": nil}, noContent: true},
		{name: "null content", body: `{"path":"a","content":null}`,
			wantValue: map[string]any{"path": "a", "content": nil}, noContent: true},
		{name: "content of another type", body: `{"path":"a","content":[1]}`,
			wantValue: map[string]any{"path": "a", "content": []any{json.Number("1")}}, noContent: true},
		{name: "empty object", body: `{}`, wantValue: map[string]any{}, noContent: true},
		{name: "a body that is no object", body: ` [1, "a"] `, wantValue: []any{json.Number("1"), "a"}, noContent: true},
		{name: "a string body", body: `"x"`, wantValue: "x", noContent: true},
		{name: "a number body", body: `12`, wantValue: json.Number("12"), noContent: true},
		{name: "a JSON content type with a suffix", body: `{"content":"x"}`, contentType: "application/merge-patch+json",
			wantValue: map[string]any{"content": "x"}, wantContent: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wb, content, err := parseBody(t, strings.NewReader(tt.body), tt.contentType, smallLimits(t))
			if err != nil {
				t.Fatalf("got %v", err)
			}
			defer wb.close()
			if !wb.body.present || !wb.body.isJSON {
				t.Fatalf("got %+v, want a JSON body", wb.body)
			}
			if diff := cmp.Diff(tt.wantValue, wb.body.value); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
			if tt.noContent != (wb.content == nil) || content != tt.wantContent {
				t.Errorf("content: got %q (spool %v), want %q (spool %v)", content, wb.content != nil, tt.wantContent, !tt.noContent)
			}
			// The streamed parse means what readBody means.
			if rb, err := readBody(httptest.NewRequest(http.MethodPut, "/", strings.NewReader(tt.body))); err != nil {
				t.Errorf("readBody: %v", err)
			} else if diff := cmp.Diff(rb.value, wb.body.value); diff != "" {
				t.Errorf("readBody disagrees (-readBody +streamed):\n%s", diff)
			}
		})
	}
}

func TestReadWriteBodyRefusals(t *testing.T) {
	bigContent := `{"path":"a","content":"` + strings.Repeat("x", 65) + `"}`
	tests := []struct {
		name        string
		body        io.Reader
		contentType string
		wantStatus  int
		wantBody    string // "" when only the status is checked
		sameAsRead  bool   // readBody answers the same
	}{
		{name: "not JSON", body: strings.NewReader(`{"path": x}`), wantStatus: 422, sameAsRead: true,
			wantBody: `{"detail":[{"type":"json_invalid","loc":["body",9],"msg":"JSON decode error","input":{},
				"ctx":{"error":"invalid character 'x' looking for beginning of value"}}]}`},
		{name: "a missing colon", body: strings.NewReader(`{"path" "a"}`), wantStatus: 422, sameAsRead: true},
		{name: "a missing comma", body: strings.NewReader(`{"path":"a" "content":"b"}`), wantStatus: 422, sameAsRead: true},
		{name: "a key that is no string", body: strings.NewReader(`{1:"a"}`), wantStatus: 422, sameAsRead: true},
		{name: "a trailing comma", body: strings.NewReader(`{"path":"a",}`), wantStatus: 422, sameAsRead: true},
		{name: "a bad literal", body: strings.NewReader(`{"path":nul}`), wantStatus: 422},
		{name: "a bad escape in the content", body: strings.NewReader(`{"content":"a\qb"}`), wantStatus: 422, sameAsRead: true},
		{name: "a bad \\u escape in the content", body: strings.NewReader(`{"content":"\u12x4"}`), wantStatus: 422, sameAsRead: true},
		{name: "a raw newline in the content", body: strings.NewReader("{\"content\":\"a\nb\"}"), wantStatus: 422, sameAsRead: true,
			wantBody: `{"detail":[{"type":"json_invalid","loc":["body",13],"msg":"JSON decode error","input":{},
				"ctx":{"error":"invalid character '\\n' in string literal"}}]}`},
		{name: "cut inside the content", body: strings.NewReader(`{"path":"a","content":"abc`), wantStatus: 422, sameAsRead: true,
			wantBody: `{"detail":[{"type":"json_invalid","loc":["body",26],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`},
		{name: "cut after a member", body: strings.NewReader(`{"path":"a"`), wantStatus: 422, sameAsRead: true},
		{name: "only white space", body: strings.NewReader(" \n"), wantStatus: 422, sameAsRead: true},
		{name: "extra data", body: strings.NewReader(`{"path":"a"} {}`), wantStatus: 422, sameAsRead: true,
			wantBody: `{"detail":[{"type":"json_invalid","loc":["body",13],"msg":"JSON decode error","input":{},"ctx":{"error":"Extra data"}}]}`},
		{name: "invalid UTF-8 in the content", body: strings.NewReader("{\"content\":\"a\xffb\"}"), wantStatus: 400,
			wantBody: detail("There was an error parsing the body")},
		{name: "a character cut by an escape", body: strings.NewReader("{\"content\":\"a\xe2\x82\\n\"}"), wantStatus: 400},
		{name: "invalid UTF-8 in the path", body: strings.NewReader("{\"path\":\"a\xff\"}"), wantStatus: 400},
		{name: "a body that breaks off", body: io.MultiReader(strings.NewReader(`{"content":"ab`), iotest.ErrReader(io.ErrUnexpectedEOF)),
			wantStatus: 400, wantBody: detail("There was an error parsing the body")},
		{name: "a body longer than its bound", body: strings.NewReader(`{"path":"a","content":"` + strings.Repeat(`\u0000`, 120) + `"}`),
			wantStatus: 413, wantBody: detail("Request body too large: more than 640 bytes; a file write carries at most 64 bytes (64 bytes) of content")},
		{name: "other members longer than their bound", body: strings.NewReader(`{"path":"` + strings.Repeat("p", 300) + `"}`),
			wantStatus: 413, wantBody: detail("Request body too large")},
		{name: "a text body longer than its bound", body: strings.NewReader(strings.Repeat("p", 300)), contentType: "text/plain",
			wantStatus: 413, wantBody: detail("Request body too large")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw []byte
			if tt.sameAsRead {
				raw, _ = io.ReadAll(tt.body)
				tt.body = bytes.NewReader(raw)
			}
			wb, _, err := parseBody(t, tt.body, tt.contentType, smallLimits(t))
			if err == nil {
				wb.close()
				t.Fatalf("got %+v, want an error", wb.body)
			}
			status, body := answer(t, err)
			if status != tt.wantStatus {
				t.Errorf("status: got %d (%s), want %d", status, body, tt.wantStatus)
			}
			if tt.wantBody != "" {
				if diff := cmp.Diff(decodeJSON(t, tt.wantBody), decodeJSON(t, body)); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			}
			if tt.sameAsRead {
				_, rerr := readBody(httptest.NewRequest(http.MethodPut, "/", bytes.NewReader(raw)))
				rs, rb := answer(t, rerr)
				got := decodeJSON(t, body).(map[string]any)["detail"].([]any)[0].(map[string]any)
				want := decodeJSON(t, rb).(map[string]any)["detail"].([]any)[0].(map[string]any)
				if rs != status || !cmp.Equal(got["loc"], want["loc"]) {
					t.Errorf("readBody answers %d at %v, the stream %d at %v (%s)", rs, want["loc"], status, got["loc"], body)
				}
			}
		})
	}
	t.Run("a declared length beyond the bound is refused unread", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPut, "/", iotest.ErrReader(errors.New("read")))
		r.ContentLength = 641
		_, err := readWriteBody(r, smallLimits(t))
		if status, _ := answer(t, err); status != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d, want 413", status)
		}
	})
	t.Run("a content above the limit is counted, not kept", func(t *testing.T) {
		wb, _, err := parseBody(t, strings.NewReader(bigContent), "", smallLimits(t))
		if err == nil {
			defer wb.close()
		}
		if err != nil || wb.content == nil || wb.content.Size() != 65 {
			t.Fatalf("got %v, %+v; want a spool of 65 bytes", err, wb.content)
		}
		if _, err := wb.content.Reader(); err == nil {
			t.Error("Reader of an oversize spool: got no error")
		}
		if v := wb.body.value.(map[string]any)["content"]; v != "<65 bytes, not repeated here>" {
			t.Errorf("the validator sees %q, want the placeholder", v)
		}
	})
	t.Run("text bodies are kept for validation", func(t *testing.T) {
		wb, _, err := parseBody(t, strings.NewReader("path=a"), "text/plain", smallLimits(t))
		if err != nil || !wb.body.present || wb.body.isJSON || wb.body.raw != "path=a" {
			t.Errorf("got %+v, %v; want the raw text", wb.body, err)
		}
	})
	t.Run("no body", func(t *testing.T) {
		wb, _, err := parseBody(t, strings.NewReader(""), "", smallLimits(t))
		if err != nil || wb.body.present {
			t.Errorf("got %+v, %v; want no body", wb.body, err)
		}
	})
}

// TestReadWriteBodySpoolsToDisk decodes a content bigger than the memory
// part of the spool, escaped and cut into the smallest reads: the spool's
// file never shows in its directory.
func TestReadWriteBodySpoolsToDisk(t *testing.T) {
	content := strings.Repeat("line \"one\" é😀\t\u2028\n", spoolMemory/20+100) // > 1 MiB
	raw, err := json.Marshal(map[string]string{"content": content, "path": "p"})
	if err != nil {
		t.Fatal(err)
	}
	lim := writeBodyLimits{content: 4 << 20, raw: 30 << 20, other: 1024, spoolDir: t.TempDir()}
	wb, got, err := parseBody(t, iotest.HalfReader(bytes.NewReader(raw)), "", lim)
	if err != nil {
		t.Fatal(err)
	}
	defer wb.close()
	if got != content {
		t.Fatalf("content of %d bytes differs from the %d sent", len(got), len(content))
	}
	if _, inMemory := wb.content.memory(); inMemory {
		t.Error("the content stayed in memory")
	}
	if entries, err := os.ReadDir(lim.spoolDir); err != nil || len(entries) != 0 {
		t.Errorf("spool dir holds %v (%v), want nothing: the file is unlinked at once", entries, err)
	}
	if v, ok := wb.body.value.(map[string]any)["content"].(string); !ok || len(v) > 100 {
		t.Errorf("the validator sees a content of %d bytes, want the placeholder", len(v))
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(dir, 3<<20)
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var want []byte
	for range 20 { // 1.25 MiB: past the memory part
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
		want = append(want, chunk...)
	}
	if _, ok := s.memory(); ok || s.Size() != int64(len(want)) {
		t.Fatalf("memory %v, size %d; want a file of %d bytes", ok, s.Size(), len(want))
	}
	for range 2 { // a Reader reads from the start, each time
		r, err := s.Reader()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(want))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("spool dir holds %v", entries)
	}

	small := newSpool(dir, 10)
	_, _ = small.Write([]byte("0123456789"))
	if b, ok := small.memory(); !ok || string(b) != "0123456789" {
		t.Errorf("at the limit: got %q, %v; want it in memory", b, ok)
	}
	_, _ = small.Write([]byte("x"))
	if _, ok := small.memory(); ok || small.Size() != 11 {
		t.Errorf("past the limit: memory %v, size %d; want nothing kept, 11 counted", ok, small.Size())
	}
}
