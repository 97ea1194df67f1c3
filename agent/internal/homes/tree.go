package homes

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"berth/shared/wire"
)

// ErrUnsafeEntry: an archive entry's name leaves the directory or is not a
// clean relative path.
var ErrUnsafeEntry = errors.New("unsafe archive entry")

// Summary is what a walk or an extraction saw.
type Summary struct {
	Digest  string // wire.HomeDigestPrefix + hex SHA-256 (see wire/homes.go)
	Bytes   int64  // file content
	Files   int64  // directories, files and links
	Skipped int64  // sockets, devices and FIFOs
}

// digester computes the tree digest of wire/homes.go, one entry at a time.
type digester struct {
	h    hash.Hash
	file hash.Hash
}

func newDigester() *digester { return &digester{h: sha256.New(), file: sha256.New()} }

// entry adds one entry; content is the file's content hash, nil for others.
func (d *digester) entry(hdr *tar.Header, content []byte) {
	fmt.Fprintf(d.h, "%c %q %o %d %q %x\n", hdr.Typeflag, hdr.Name, hdr.Mode&0o7777, hdr.Size, hdr.Linkname, content)
}

func (d *digester) sum() string { return wire.HomeDigestPrefix + hex.EncodeToString(d.h.Sum(nil)) }

// walk visits dir in lexical order (the directory itself first, as "."),
// calling emit with each entry's header and, for regular files, a reader of
// its content (emit may read it or not; walk reads the rest for the digest).
// emit nil only computes the summary.
func walk(ctx context.Context, dir string, emit func(hdr *tar.Header, content io.Reader) error) (Summary, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Summary{}, err
	}
	defer root.Close()
	var sum Summary
	d := newDigester()
	buf := make([]byte, 64<<10)
	err = fs.WalkDir(root.FS(), ".", func(name string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := root.Lstat(name)
		if err != nil {
			return err
		}
		hdr, err := header(root, name, info)
		if err != nil {
			return err
		}
		if hdr == nil {
			sum.Skipped++
			return nil
		}
		sum.Files++
		if hdr.Typeflag != tar.TypeReg {
			d.entry(hdr, nil)
			if emit != nil {
				return emit(hdr, nil)
			}
			return nil
		}
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		d.file.Reset()
		// Exactly the size announced in the header, whatever the file does
		// meanwhile: a shorter file fails the copy, a longer one is cut and
		// then fails the digest check on the other side.
		content := &countingReader{r: io.TeeReader(io.LimitReader(f, hdr.Size), d.file)}
		if emit != nil {
			if err := emit(hdr, content); err != nil {
				return err
			}
		}
		if _, err := io.CopyBuffer(io.Discard, content, buf); err != nil {
			return err
		}
		if content.n != hdr.Size {
			return fmt.Errorf("%s: changed while it was read (%d of %d bytes)", name, content.n, hdr.Size)
		}
		sum.Bytes += hdr.Size
		d.entry(hdr, d.file.Sum(nil))
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	sum.Digest = d.sum()
	return sum, nil
}

// header describes one entry for the archive, or nil for a type that is
// skipped.
func header(root *os.Root, name string, info fs.FileInfo) (*tar.Header, error) {
	mode := int64(info.Mode().Perm())
	for bit, m := range map[int64]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if info.Mode()&m != 0 {
			mode |= bit
		}
	}
	hdr := &tar.Header{Name: name, Mode: mode, ModTime: info.ModTime(), Format: tar.FormatPAX}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	}
	switch {
	case info.Mode().IsDir():
		hdr.Typeflag = tar.TypeDir
	case info.Mode().IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := root.Readlink(name)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	default:
		return nil, nil
	}
	return hdr, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Archive writes dir to w as a tar stream and returns its summary, whose
// digest the target checks its copy against.
func Archive(ctx context.Context, dir string, w io.Writer) (Summary, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tar.NewWriter(bw)
	buf := make([]byte, 64<<10)
	sum, err := walk(ctx, dir, func(hdr *tar.Header, content io.Reader) error {
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if content != nil {
			_, err := io.CopyBuffer(tw, content, buf)
			return err
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	if err := tw.Close(); err != nil {
		return Summary{}, err
	}
	return sum, bw.Flush()
}

// Digest reads every file of dir and returns its summary.
func Digest(ctx context.Context, dir string) (Summary, error) { return walk(ctx, dir, nil) }

// Size is the file content below dir, from metadata only.
func Size(dir string) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	var n int64
	err = fs.WalkDir(root.FS(), ".", func(_ string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}

// Extract writes the tar stream r into dir, which must exist and be empty,
// and calls progress after each entry with the content bytes and entries
// written so far. Ownership is restored when the process may (root);
// directory modes and times are applied last, deepest first, so that a
// read-only directory can still be filled. It does not verify: the caller
// flushes and compares Digest(dir) with the source's.
func Extract(ctx context.Context, r io.Reader, dir string, progress func(bytes, files int64)) (Summary, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Summary{}, err
	}
	defer root.Close()
	chown := os.Geteuid() == 0
	tr := tar.NewReader(bufio.NewReaderSize(r, 64<<10))
	buf := make([]byte, 64<<10)
	var sum Summary
	var dirs []*tar.Header // applied at the end
	for {
		if err := ctx.Err(); err != nil {
			return Summary{}, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Summary{}, fmt.Errorf("read archive: %w", err)
		}
		name := hdr.Name
		if name != "." && (!fs.ValidPath(name) || path.Clean(name) != name) {
			return Summary{}, fmt.Errorf("%w: %q", ErrUnsafeEntry, name)
		}
		if isSparse(hdr) {
			return Summary{}, fmt.Errorf("%w: %q is a sparse file (%d bytes from a short stream)", ErrUnsafeEntry, name, hdr.Size)
		}
		perm := fs.FileMode(hdr.Mode & 0o777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name != "." {
				if err := root.Mkdir(name, 0o700); err != nil {
					return Summary{}, err
				}
			}
			dirs = append(dirs, hdr)
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return Summary{}, err
			}
			n, err := io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return Summary{}, fmt.Errorf("write %s: %w", name, err)
			}
			sum.Bytes += n
			if err := finish(root, hdr, chown, perm); err != nil {
				return Summary{}, err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return Summary{}, err
			}
			if chown {
				if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
					return Summary{}, err
				}
			}
		default:
			return Summary{}, fmt.Errorf("%w: %q has type %q", ErrUnsafeEntry, name, hdr.Typeflag)
		}
		sum.Files++
		if progress != nil {
			progress(sum.Bytes, sum.Files)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := finish(root, dirs[i], chown, fs.FileMode(dirs[i].Mode&0o777)); err != nil {
			return Summary{}, err
		}
	}
	return sum, nil
}

// isSparse reports whether hdr is a PAX sparse file (GNU.sparse.*
// records): archive/tar expands its holes into zeros on read, so a few
// kilobytes of stream could write any number of bytes to disk. Archive
// never writes one. (GNU's old sparse type 'S' is refused by its type.)
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// finish restores an entry's owner, mode (special bits included) and times.
func finish(root *os.Root, hdr *tar.Header, chown bool, perm fs.FileMode) error {
	if chown {
		if err := root.Lchown(hdr.Name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	mode := perm
	for bit, m := range map[int64]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if hdr.Mode&bit != 0 {
			mode |= m
		}
	}
	if err := root.Chmod(hdr.Name, mode); err != nil {
		return err
	}
	return root.Chtimes(hdr.Name, hdr.ModTime, hdr.ModTime)
}
