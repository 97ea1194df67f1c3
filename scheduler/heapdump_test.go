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
// Signals are sent until they are seen: one that comes before the handler
// is installed, or while a profile is written, is lost.
func TestProfileOnSignal(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); profileOnSignal(ctx, dir, hclog.NewNullLogger()) }()
	files := func(pattern string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		return m
	}
	testutil.Eventually(t, 10*time.Second, "a heap profile after SIGUSR1", func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		return len(files("heap-*.pprof")) > 0
	})
	checkProfile(t, files("heap-*.pprof")[0])
	testutil.Eventually(t, 10*time.Second, "a CPU profile started after SIGUSR2", func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGUSR2) // ignored once one runs
		return len(files("cpu-*.pprof.tmp")) > 0
	})
	cancel()
	<-done
	cpu := files("cpu-*")
	if len(cpu) != 1 || filepath.Ext(cpu[0]) != ".pprof" {
		t.Fatalf("CPU profile files %v, want one whole profile (SIGUSR2 while one runs is ignored)", cpu)
	}
	checkProfile(t, cpu[0])
}

func checkProfile(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("profile %q: %v, %v; want a non-empty file of mode 0600", path, st, err)
	}
}
