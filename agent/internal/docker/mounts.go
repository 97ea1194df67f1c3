package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Owner of the directories created for bind mounts: the workspace image's
// `dev` user. Kept a constant on purpose (one image family, one user).
const (
	mountUID = 1000
	mountGID = 1000
)

// lexicalSource maps a mount source to the host path it names, refusing
// (ErrBadRequest) anything that is not, as written, strictly below the data
// directory: a relative source is joined onto the data directory, an
// absolute one must already lie below it. It reads nothing; resolveSource
// adds the symlink check.
func lexicalSource(dataDir, src string) (string, error) {
	if strings.TrimSpace(src) == "" {
		return "", fmt.Errorf("%w: mount source is empty", ErrBadRequest)
	}
	var p string
	if filepath.IsAbs(src) {
		p = filepath.Clean(src)
	} else {
		p = filepath.Join(dataDir, src) // Join cleans: "a/../../etc" becomes "<parent>/etc"
	}
	if !strictlyWithin(dataDir, p) {
		return "", fmt.Errorf("%w: mount source %q is not below the data directory %q", ErrBadRequest, src, dataDir)
	}
	return p, nil
}

// resolveSource maps a mount source to the host path it will bind, refusing
// anything that is not strictly below the data directory. A relative source
// is joined onto the data directory; an absolute one is accepted only if it
// already lies below it. The longest existing prefix of the path is resolved
// with filepath.EvalSymlinks, so a symlink inside the data directory that
// points outside is caught; the returned path is free of symlinks, which is
// what Docker is then asked to bind. resolveSource creates nothing.
func resolveSource(dataDir, src string) (string, error) {
	p, err := lexicalSource(dataDir, src)
	if err != nil {
		return "", err
	}
	// Split p into the part that exists and the part that does not.
	existing, rest := p, ""
	for {
		_, err := os.Lstat(existing)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: mount source %q: %w", ErrBadRequest, src, err)
		}
		parent := filepath.Dir(existing)
		if parent == existing { // cannot happen for an absolute path: "/" exists
			return "", fmt.Errorf("%w: mount source %q: no existing prefix", ErrBadRequest, src)
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("%w: mount source %q: %w", ErrBadRequest, src, err)
	}
	full := filepath.Join(resolved, rest)
	if !strictlyWithin(dataDir, full) {
		return "", fmt.Errorf("%w: mount source %q resolves to %q, which is not below the data directory %q",
			ErrBadRequest, src, full, dataDir)
	}
	return full, nil
}

// strictlyWithin reports whether p lies below root (p == root is refused:
// no container gets the whole data directory). Both must be clean and
// absolute.
func strictlyWithin(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ensureMountDir makes the resolved mount source exist as a directory. A
// directory it creates gets mode 0755 and owner mountUID:mountGID (the
// intermediate ones stay root's); an existing directory is left as it is, so
// re-creating a workspace never rewrites its data. It re-checks after
// creation that the path still resolves to itself below dataDir.
func ensureMountDir(dataDir, path string) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return fmt.Errorf("%w: mount source %q exists and is not a directory", ErrBadRequest, path)
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("create mount dir %q: %w", path, err)
		}
		if err := os.Chmod(path, 0o755); err != nil { // MkdirAll's mode is subject to the umask
			return fmt.Errorf("chmod mount dir %q: %w", path, err)
		}
		if err := os.Lchown(path, mountUID, mountGID); err != nil {
			return fmt.Errorf("chown mount dir %q: %w", path, err)
		}
	default:
		return fmt.Errorf("stat mount dir %q: %w", path, err)
	}
	again, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolve mount dir %q: %w", path, err)
	}
	if again != path || !strictlyWithin(dataDir, again) {
		return fmt.Errorf("%w: mount source %q changed to %q while being created", ErrBadRequest, path, again)
	}
	return nil
}

// RemoveData deletes a file or directory strictly below the data directory
// (rel is relative to it). It is how workspace data is purged; nothing else
// in the agent deletes data. A missing path is ErrNotFound.
func (c *Client) RemoveData(rel string) error {
	if err := ValidateDataPath(c.dataDir, rel); err != nil {
		return err
	}
	p, err := resolveSource(c.dataDir, rel)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: data path %q", ErrNotFound, rel)
	}
	if err := unmountBelow(context.Background(), p); err != nil { // quota'd homes
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("%w: remove %s: %w", ErrDocker, p, err)
	}
	return nil
}

// DataPath resolves rel, a path relative to the data directory, to the host
// path strictly below it, under the same rules as mount sources (symbolic
// links included). It is how the home transfer routes find their
// directories. A home with a quota image that is not mounted (the host
// restarted) is mounted first, so a transfer never reads the empty
// directory under it.
func DataPath(dataDir, rel string) (string, error) {
	if err := ValidateDataPath(dataDir, rel); err != nil {
		return "", err
	}
	p, err := resolveSource(dataDir, rel)
	if err != nil {
		return "", err
	}
	if err := remountQuotas(context.Background(), []string{p}); err != nil {
		return "", err
	}
	return p, nil
}
