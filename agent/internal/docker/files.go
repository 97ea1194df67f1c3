package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
)

// CopyIn writes one file of exactly size bytes read from r to the absolute
// path p in a berth container (running or stopped), with the permission bits
// of mode (0644 when zero) and owner uid:gid. The content is streamed to the
// daemon as a tar archive, never buffered whole.
//
// Missing parent directories are created by the same archive, owned by
// uid:gid with mode 0755 (no exec is needed, so this also works on a stopped
// container); existing directories are left untouched. An existing directory
// at p, or a non-directory among its parents, gives ErrBadRequest, and so
// does r ending before size bytes; the archive is then aborted, but the
// daemon may already have written the truncated file (streaming means it
// cannot be withheld), so callers treat such a file as garbage.
func (c *Client) CopyIn(ctx context.Context, id, p string, r io.Reader, size int64, mode os.FileMode, uid, gid int) error {
	if !path.IsAbs(p) || path.Clean(p) == "/" {
		return fmt.Errorf("%w: destination %q must be an absolute file path", ErrBadRequest, p)
	}
	p = path.Clean(p)
	if size < 0 {
		return fmt.Errorf("%w: size %d must not be negative", ErrBadRequest, size)
	}
	if uid < 0 || gid < 0 {
		return fmt.Errorf("%w: uid %d and gid %d must not be negative", ErrBadRequest, uid, gid)
	}
	if mode.Perm() == 0 {
		mode = 0o644
	}
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return err
	}

	// Find the deepest existing ancestor; everything below it is created.
	base := path.Dir(p)
	var missing []string // outermost first
	for {
		exists, isDir, err := c.statDir(ctx, ctr.ID, base)
		if err != nil {
			return err
		}
		if exists && !isDir {
			return fmt.Errorf("%w: %s is not a directory in container %s", ErrBadRequest, base, id)
		}
		if exists {
			break
		}
		missing = append([]string{path.Base(base)}, missing...)
		base = path.Dir(base)
	}
	if len(missing) == 0 { // the parent exists: p itself must not be a directory
		exists, isDir, err := c.statDir(ctx, ctr.ID, p)
		if err != nil {
			return err
		}
		if exists && isDir {
			return fmt.Errorf("%w: %s is a directory in container %s", ErrBadRequest, p, id)
		}
	}

	pr, pw := io.Pipe()
	writeDone := make(chan error, 1)
	go func() {
		err := writeSingleFileTar(pw, missing, path.Base(p), r, size, mode, uid, gid)
		pw.CloseWithError(err) // nil closes normally
		writeDone <- err
	}()
	err = c.api.CopyToContainer(ctx, ctr.ID, base, pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errors.New("copy finished")) // unblocks the writer if the daemon stopped reading
	if werr := <-writeDone; werr != nil {
		return fmt.Errorf("%w: copy to %s:%s: %w", ErrBadRequest, id, p, werr)
	}
	if err != nil {
		return wrapErr(err, "copy to %s:%s", id, p)
	}
	return nil
}

// writeSingleFileTar writes dirs (nested, outermost first) and then the file
// name inside them, with size bytes from r.
func writeSingleFileTar(w io.Writer, dirs []string, name string, r io.Reader, size int64, mode os.FileMode, uid, gid int) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	prefix := ""
	for _, d := range dirs {
		prefix += d + "/"
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: prefix, Mode: 0o755, Uid: uid, Gid: gid, ModTime: now,
		}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: prefix + name, Size: size, Mode: int64(mode.Perm()), Uid: uid, Gid: gid, ModTime: now,
	}); err != nil {
		return err
	}
	if n, err := io.CopyN(tw, r, size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("content ended after %d of %d bytes", n, size)
		}
		return fmt.Errorf("read content: %w", err)
	}
	return tw.Close()
}

// statDir reports whether p exists in the container and is a directory
// (following a symlink to its target).
func (c *Client) statDir(ctx context.Context, containerID, p string) (exists, isDir bool, err error) {
	st, err := c.api.ContainerStatPath(ctx, containerID, p)
	if isNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, wrapErr(err, "stat %s", p)
	}
	if st.Mode&os.ModeSymlink != 0 && st.LinkTarget != "" && st.LinkTarget != p {
		return c.statDir(ctx, containerID, st.LinkTarget)
	}
	return true, st.Mode.IsDir(), nil
}

// CopyOut opens the regular file at the absolute path p in a berth container
// and returns its content (not a tar archive) with its size and permission
// bits (unix style, e.g. 0644). A symlink is followed. The caller must close
// the reader. A missing file gives ErrNotFound, a directory or any other
// non-regular file ErrBadRequest.
func (c *Client) CopyOut(ctx context.Context, id, p string) (io.ReadCloser, wire.FileInfo, error) {
	if !path.IsAbs(p) {
		return nil, wire.FileInfo{}, fmt.Errorf("%w: source %q must be an absolute path", ErrBadRequest, p)
	}
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return nil, wire.FileInfo{}, err
	}
	src := path.Clean(p)
	rc, st, err := c.api.CopyFromContainer(ctx, ctr.ID, src)
	if err != nil {
		return nil, wire.FileInfo{}, wrapErr(err, "copy from %s:%s", id, p)
	}
	if st.Mode&os.ModeSymlink != 0 && st.LinkTarget != "" {
		rc.Close()
		src = st.LinkTarget // already resolved by the daemon, within the container
		rc, st, err = c.api.CopyFromContainer(ctx, ctr.ID, src)
		if err != nil {
			return nil, wire.FileInfo{}, wrapErr(err, "copy from %s:%s", id, src)
		}
	}
	if !st.Mode.IsRegular() {
		rc.Close()
		what := "not a regular file"
		if st.Mode.IsDir() {
			what = "a directory"
		}
		return nil, wire.FileInfo{}, fmt.Errorf("%w: %s in container %s is %s", ErrBadRequest, p, id, what)
	}
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		rc.Close()
		return nil, wire.FileInfo{}, fmt.Errorf("%w: read archive of %s:%s: %w", ErrDocker, id, p, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		rc.Close()
		return nil, wire.FileInfo{}, fmt.Errorf("%w: %s in container %s is not a regular file", ErrBadRequest, p, id)
	}
	info := wire.FileInfo{Path: p, Size: hdr.Size, Mode: uint32(hdr.Mode & 0o7777)}
	return &tarFile{Reader: tr, body: rc}, info, nil
}

// tarFile reads the first entry of a tar stream and closes the stream.
type tarFile struct {
	io.Reader
	body io.Closer
}

func (f *tarFile) Close() error { return f.body.Close() }
