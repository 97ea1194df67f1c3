package homes

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// FuzzExtract fuzzes the home transfer's tar extraction (tree.go, Extract)
// with any stream, as a peer agent could send. Properties:
//   - nothing lands outside the target directory, whatever the names,
//     links or failures; nothing in it is a device, FIFO or socket;
//   - what is written is at most what the stream carries (no sparse or
//     other expansion fills a disk from a small stream);
//   - an accepted stream round-trips: the directory archived again and
//     extracted elsewhere has the same digest.
func FuzzExtract(f *testing.F) {
	for _, hdrs := range [][]*tar.Header{
		{{Name: ".", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "a", Typeflag: tar.TypeDir, Mode: 0o700},
			{Name: "a/f", Typeflag: tar.TypeReg, Mode: 0o644}, {Name: "l", Typeflag: tar.TypeSymlink, Linkname: "a/f"}},
		{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "out/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../.."}, {Name: "up/x", Typeflag: tar.TypeDir, Mode: 0o755}},
		{{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, {Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}},
		{{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
		{{Name: "fifo", Typeflag: tar.TypeFifo}},
		{{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 0}},
		{{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, {Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "ro", Typeflag: tar.TypeDir, Mode: 0o500}, {Name: "ro/f", Typeflag: tar.TypeReg, Mode: 0o400}},
		{{Name: "é😀\u2028", Typeflag: tar.TypeReg, Mode: 0o644}},
	} {
		f.Add(tarOf(f, hdrs))
	}
	f.Add(paxSparseStream(16 << 20))
	f.Add([]byte("not a tar stream"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "home")
		if err := os.Mkdir(dst, 0o700); err != nil {
			t.Fatal(err)
		}
		sum, err := Extract(context.Background(), bytes.NewReader(data), dst, nil)
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("the parent holds %v: something landed outside the directory", entries)
		}
		written := checkTree(t, dst)
		if written > int64(len(data)) {
			t.Fatalf("wrote %d bytes of files from a stream of %d", written, len(data))
		}
		if err != nil {
			return
		}
		if sum.Bytes != written {
			t.Fatalf("summary says %d bytes, the files hold %d", sum.Bytes, written)
		}
		want, err := Digest(context.Background(), dst)
		if err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		if _, err := Archive(context.Background(), dst, &again); err != nil {
			t.Fatal(err)
		}
		dst2 := filepath.Join(t.TempDir(), "copy")
		if err := os.Mkdir(dst2, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Extract(context.Background(), &again, dst2, nil); err != nil {
			t.Fatalf("the extracted tree archived again does not extract: %v", err)
		}
		if got, err := Digest(context.Background(), dst2); err != nil || got.Digest != want.Digest {
			t.Fatalf("round trip digest %q (%v), want %q", got.Digest, err, want.Digest)
		}
	})
}

// checkTree fails on a device, FIFO or socket below dir and returns the
// bytes its regular files hold.
func checkTree(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsRegular():
			n += info.Size()
		case m.IsDir(), m&fs.ModeSymlink != 0:
		default:
			t.Errorf("%s has mode %s", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return n
}

// tarOf builds a tar stream from headers (content "x" for files).
func tarOf(tb testing.TB, hdrs []*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.ModTime = time.Unix(1700000000, 0)
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte("x")); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// paxSparseStream is a tar stream of one PAX 1.0 sparse file of realsize
// bytes whose only data is its last byte: about 3.5 KB that archive/tar
// reads back as realsize bytes. (tar.Writer writes no sparse files, so the
// PAX header block is built by hand.)
func paxSparseStream(realsize int64) []byte {
	records := ""
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "sparse"},
		{"GNU.sparse.realsize", strconv.FormatInt(realsize, 10)}} {
		records += paxRecord(kv[0], kv[1])
	}
	xhdr := rawEntry(&tar.Header{Name: "PaxHeaders/sparse", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(records))
	xhdr[156] = tar.TypeXHeader
	copy(xhdr[148:156], "        ")
	sum := 0
	for _, c := range xhdr[:512] {
		sum += int(c)
	}
	copy(xhdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	sparseMap := []byte(fmt.Sprintf("1\n%d\n1\n", realsize-1)) // one entry: offset, length
	data := append(append(sparseMap, make([]byte, 512-len(sparseMap))...), 'x')
	out := append(xhdr, rawEntry(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Mode: 0o644}, data)...)
	return append(out, make([]byte, 1024)...) // the end of the archive
}

// rawEntry is one USTAR entry (header and padded content), without the
// end of the archive.
func rawEntry(hdr *tar.Header, content []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr.Format, hdr.Size, hdr.ModTime = tar.FormatUSTAR, int64(len(content)), time.Unix(1700000000, 0)
	if err := tw.WriteHeader(hdr); err != nil {
		panic(err)
	}
	_, _ = tw.Write(content)
	_ = tw.Flush()
	return buf.Bytes()
}

// paxRecord is one PAX record: "<length> <key>=<value>\n", the length
// counting itself.
func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	n := len(s)
	for n != len(strconv.Itoa(n))+len(s) {
		n = len(strconv.Itoa(n)) + len(s)
	}
	return strconv.Itoa(n) + s
}
