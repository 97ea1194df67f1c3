package homes

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample builds a small home: nested directories, an empty file, a large
// one, a symbolic link (dangling too) and odd modes.
func sample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "src/pkg"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "src/pkg/main.go"), []byte("package main\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600))
	must(os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 300_000), 0o640))
	must(os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.Symlink("src/pkg/main.go", filepath.Join(dir, "link")))
	must(os.Symlink("/nowhere/at/all", filepath.Join(dir, "dangling")))
	must(os.Mkdir(filepath.Join(dir, "locked"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "locked/inside"), []byte("x"), 0o400))
	must(os.Chmod(filepath.Join(dir, "locked"), 0o500))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "locked"), 0o755) })
	return dir
}

func TestArchiveExtractRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := sample(t)
	var buf bytes.Buffer
	sent, err := Archive(ctx, src, &buf)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	var calls int
	got, err := Extract(ctx, &buf, dst, func(int64, int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "locked"), 0o755) })
	check, err := Digest(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if check.Digest != sent.Digest {
		t.Errorf("digest of the copy %s, of the source %s", check.Digest, sent.Digest)
	}
	if got.Bytes != sent.Bytes || got.Files != sent.Files || calls != int(sent.Files) {
		t.Errorf("extracted %d bytes in %d entries (%d progress calls), sent %d in %d", got.Bytes, got.Files, calls, sent.Bytes, sent.Files)
	}
	if target, err := os.Readlink(filepath.Join(dst, "dangling")); err != nil || target != "/nowhere/at/all" {
		t.Errorf("dangling link: %q, %v", target, err)
	}
	info, err := os.Stat(filepath.Join(dst, "locked"))
	if err != nil || info.Mode().Perm() != 0o500 {
		t.Errorf("locked dir: %v, %v; want mode 0500", info.Mode(), err)
	}
	if size, err := Size(src); err != nil || size != sent.Bytes {
		t.Errorf("Size = %d, %v; want %d", size, err, sent.Bytes)
	}
}

func TestDigestSeesEveryChange(t *testing.T) {
	ctx := context.Background()
	changes := []struct {
		name   string
		change func(dir string) error
	}{
		{"content", func(d string) error {
			return os.WriteFile(filepath.Join(d, "run.sh"), []byte("#!/bin/sh\necho ho\n"), 0o755)
		}},
		{"mode", func(d string) error { return os.Chmod(filepath.Join(d, "run.sh"), 0o700) }},
		{"new empty file", func(d string) error { return os.WriteFile(filepath.Join(d, "new"), nil, 0o644) }},
		{"removed file", func(d string) error { return os.Remove(filepath.Join(d, "empty")) }},
		{"link target", func(d string) error {
			if err := os.Remove(filepath.Join(d, "link")); err != nil {
				return err
			}
			return os.Symlink("elsewhere", filepath.Join(d, "link"))
		}},
		{"renamed", func(d string) error { return os.Rename(filepath.Join(d, "empty"), filepath.Join(d, "empty2")) }},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			dir := sample(t)
			before, err := Digest(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.change(dir); err != nil {
				t.Fatal(err)
			}
			after, err := Digest(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if before.Digest == after.Digest {
				t.Errorf("digest unchanged after a change of %s", tt.name)
			}
		})
	}
}

// archiveOf builds a tar stream from headers (content "x" for files).
func archiveOf(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestExtractRefusesEscapes(t *testing.T) {
	tests := []struct {
		name string
		hdrs []*tar.Header
	}{
		{"parent path", []*tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"absolute path", []*tar.Header{{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"unclean path", []*tar.Header{{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}}},
		{"write through a symlink", []*tar.Header{
			{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
			{Name: "out/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		}},
		{"device", []*tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Mode: 0o644}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "home")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			_, err := Extract(context.Background(), archiveOf(t, tt.hdrs...), dst, nil)
			if err == nil {
				t.Fatal("extracted; want a refusal")
			}
			// Nothing may have landed outside the directory.
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Errorf("parent holds %d entries, want only the home", len(entries))
			}
			if _, err := os.Lstat("/tmp/evil"); err == nil && strings.Contains(tt.name, "symlink") {
				t.Error("wrote /tmp/evil through the link")
			}
			if strings.Contains(tt.name, "path") && !errors.Is(err, ErrUnsafeEntry) {
				t.Errorf("error %v; want ErrUnsafeEntry", err)
			}
		})
	}
}
