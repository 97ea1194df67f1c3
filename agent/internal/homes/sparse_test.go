package homes

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestExtractRefusesSparse: a PAX sparse file would be expanded by
// archive/tar into its full size; 3.5 KB of stream must not write 1 TiB.
func TestExtractRefusesSparse(t *testing.T) {
	for _, size := range []int64{16 << 20, 1 << 40} {
		dst := filepath.Join(t.TempDir(), "home")
		if err := os.Mkdir(dst, 0o700); err != nil {
			t.Fatal(err)
		}
		stream := paxSparseStream(size)
		sum, err := Extract(context.Background(), bytes.NewReader(stream), dst, nil)
		if !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("sparse file of %d bytes from %d: got %+v, %v; want ErrUnsafeEntry", size, len(stream), sum, err)
		}
		if written := checkTree(t, dst); written != 0 {
			t.Errorf("wrote %d bytes", written)
		}
	}
}
