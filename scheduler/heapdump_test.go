package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A heap profile is written whole under its final name, readable by its
// owner only, with no temporary file left; a missing directory is an error.
func TestWriteHeapProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heap-1.pprof")
	if err := writeHeapProfile(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("profile: %v, %v; want a non-empty file of mode 0600", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := writeHeapProfile(filepath.Join(dir, "missing", "heap.pprof")); err == nil {
		t.Error("a profile into a missing directory: got nil, want an error")
	}
}
