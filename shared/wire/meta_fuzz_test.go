package wire

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/shared/testutil"
)

// FuzzDecodeNodeMeta fuzzes the gossip metadata decoder (meta.go), which
// reads what any member of the pool sends. Properties: decoding costs at
// most testutil.AllocBound of the input; what it accepts encodes again
// (or is refused by Encode as too large, never otherwise) and decodes back
// to the same value.
func FuzzDecodeNodeMeta(f *testing.F) {
	for _, s := range []string{
		`{"r":"a","id":"ws-local-1","a":"ws-local-1:7443","rg":"local","l":{"gpu":"no"},"ar":"amd64","c":2000,"m":4096,"s":7}`,
		`{"r":"s","id":"scheduler"}`,
		`{"r":"a","id":"x","c":1e640000000}`,
		`{"r":"a","id":"x","s":-1,"w":1.5}`,
		`{"r":"a","id":"\u0000../../etc","l":{"":"","\ud800":"\udfff"}}`,
		"{\"r\":\"a\",\"id\":\"\xff\xfe\"}",
		`{"l":{` + `"a":"b",` + `"c":"d"}}`,
		`[]`, `null`, ``, `{"r":"a"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m NodeMeta
		var err error
		testutil.Measure(func() { m, err = DecodeNodeMeta(b) }).Within(t, "DecodeNodeMeta", testutil.AllocBound(len(b)))
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if errors.Is(err, ErrMetaTooLarge) {
			return
		}
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		back, err := DecodeNodeMeta(enc)
		if err != nil {
			t.Fatalf("own encoding %s does not decode: %v", enc, err)
		}
		if diff := cmp.Diff(m, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-decoded +again):\n%s", diff)
		}
	})
}
