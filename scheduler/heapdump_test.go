package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/shared/testutil"
)

// A profile is written whole under its final name, readable by its owner
// only, with no temporary file left; a missing directory is an error.
func TestWriteProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heap-1.pprof")
	if err := writeProfile(path, func(w io.Writer) error { _, err := w.Write([]byte("profile")); return err }); err != nil {
		t.Fatal(err)
	}
	checkProfile(t, path)
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := writeProfile(filepath.Join(dir, "missing", "heap.pprof"), func(io.Writer) error { return nil }); err == nil {
		t.Error("a profile into a missing directory: got nil, want an error")
	}
}

// SIGUSR1 writes a heap profile; SIGUSR2 profiles the CPU, written when
// its time is up or, as here, when the process stops, which waits for it.
func TestProfileOnSignal(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); profileOnSignal(ctx, dir, hclog.NewNullLogger()) }()
	one := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		if len(m) == 1 {
			return m[0]
		}
		return ""
	}
	// The handler may not be installed yet: signal until the profile is there.
	testutil.Eventually(t, 10*time.Second, "a heap profile after SIGUSR1", func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		return one("heap-*.pprof") != ""
	})
	checkProfile(t, one("heap-*.pprof"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a CPU profile started", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "cpu-*.pprof.tmp"))
		return len(m) == 1
	})
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil { // ignored: one runs
		t.Fatal(err)
	}
	cancel()
	<-done
	checkProfile(t, one("cpu-*.pprof"))
	if m, _ := filepath.Glob(filepath.Join(dir, "cpu-*")); len(m) != 1 {
		t.Errorf("CPU profile files %v, want one (the second SIGUSR2 came while it ran)", m)
	}
}

func checkProfile(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("profile %q: %v, %v; want a non-empty file of mode 0600", path, st, err)
	}
}
