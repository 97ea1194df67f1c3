package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Disk quotas: a home with a quota is a file system of its own, an ext4
// image file beside the directory (<dir>.ext4, sparse: it takes only what is
// written) loop-mounted on it with nosuid,nodev. Writing past the size fails
// inside the workspace with ENOSPC. It needs root, loop devices and
// mkfs.ext4; it works on any backing file system (no XFS project quotas
// needed), which is why berth uses it. Probe decides once per host whether
// it works; where it does not, homes are plain directories on the data
// directory (itself remounted nosuid,nodev) and every create reports
// "none: <why>".

// quotaImage is the image file of a quota'd mount directory.
func quotaImage(dir string) string { return dir + ".ext4" }

// quotaMountOpts are the mount options of every quota'd home.
const quotaMountOpts = "loop,nosuid,nodev,noatime"

// ensureQuota makes dir a mounted file system of gb GiB and describes it.
// A new image is made and, when dir already holds files (a home made before
// quotas, or imported from another host), they are copied into it first.
// An existing image smaller than gb is grown (unmounted: e2fsck, resize2fs);
// a bigger one is kept (shrinking could lose data), and said so.
func (c *Client) ensureQuota(ctx context.Context, dir string, gb int64) (string, error) {
	img := quotaImage(dir)
	size := gb << 30
	mounted, err := isMountPoint(dir)
	if err != nil {
		return "", err
	}
	fi, statErr := os.Stat(img)
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		if mounted { // someone else's mount: never stack ours on it
			return "", fmt.Errorf("%w: %s is a mount point without berth's image %s", ErrDocker, dir, img)
		}
		if err := makeQuotaImage(ctx, img, size); err != nil {
			return "", err
		}
		if err := c.moveIntoImage(ctx, dir, img); err != nil {
			_ = os.Remove(img)
			return "", err
		}
	case statErr != nil:
		return "", fmt.Errorf("%w: stat %s: %w", ErrDocker, img, statErr)
	case fi.Size() < size:
		// Offline: online growth needs CAP_SYS_RESOURCE, which the local
		// hosts lack. At create nothing uses the home yet.
		if mounted {
			if err := runHost(ctx, "umount", dir); err != nil {
				return "", err
			}
			mounted = false
		}
		if err := os.Truncate(img, size); err != nil {
			return "", fmt.Errorf("%w: grow %s: %w", ErrDocker, img, err)
		}
		// e2fsck exits 1 when it corrected something (it re-creates
		// lost+found, which berth removes): fine.
		if err := runHost(ctx, "e2fsck", "-f", "-p", img); err != nil && !exitedWith(err, 1) {
			return "", err
		}
		if err := runHost(ctx, "resize2fs", img); err != nil {
			return "", err
		}
	}
	if !mounted {
		if err := runHost(ctx, "mount", "-t", "ext4", "-o", quotaMountOpts, img, dir); err != nil {
			return "", err
		}
	}
	// No lost+found in the user's home (e2fsck makes one when it needs
	// it); a non-empty one stays.
	_ = os.Remove(filepath.Join(dir, "lost+found"))
	if fi != nil && fi.Size() > size {
		return fmt.Sprintf("%d GB (loop ext4, kept from before; asked %d GB)", fi.Size()>>30, gb), nil
	}
	return fmt.Sprintf("%d GB (loop ext4)", gb), nil
}

// makeQuotaImage writes a sparse ext4 image of size bytes whose root
// belongs to the workspace user.
func makeQuotaImage(ctx context.Context, img string, size int64) error {
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%w: create %s: %w", ErrDocker, img, err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(img)
		return fmt.Errorf("%w: size %s: %w", ErrDocker, img, err)
	}
	// No reserved blocks (the whole size is the user's); lazy inode tables:
	// mkfs takes milliseconds, not seconds.
	if err := runHost(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E",
		fmt.Sprintf("lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=%d:%d", mountUID, mountGID), img); err != nil {
		_ = os.Remove(img)
		return err
	}
	return nil
}

// moveIntoImage copies what dir holds into the new image img, then empties
// dir, so that mounting img on dir shows the same files. An empty dir
// costs nothing.
func (c *Client) moveIntoImage(ctx context.Context, dir, img string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return nil //nolint:nilerr // a missing or empty directory has nothing to move
	}
	tmp := dir + ".quota-copy"
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrDocker, err)
	}
	defer os.Remove(tmp)
	if err := runHost(ctx, "mount", "-t", "ext4", "-o", quotaMountOpts, img, tmp); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(tmp, "lost+found"))
	copyErr := runHost(ctx, "cp", "-a", dir+"/.", tmp+"/")
	if err := runHost(ctx, "umount", tmp); err != nil {
		return err
	}
	if copyErr != nil {
		return copyErr
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("%w: empty %s after copying it into its image: %w", ErrDocker, dir, err)
		}
	}
	c.log.Info("home moved into its quota image", "dir", dir, "entries", len(entries))
	return nil
}

// dropQuota unmounts dir if it is mounted and removes its image: a Fresh
// mount starts from nothing.
func dropQuota(ctx context.Context, dir string) error {
	if err := unmountBelow(ctx, dir); err != nil {
		return err
	}
	if err := os.Remove(quotaImage(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: remove %s: %w", ErrDocker, quotaImage(dir), err)
	}
	return nil
}

// remountQuotas mounts the image of every bind source of a container that
// has one and is not mounted (after a host restart), before it starts.
func remountQuotas(ctx context.Context, sources []string) error {
	for _, dir := range sources {
		if _, err := os.Stat(quotaImage(dir)); err != nil {
			continue
		}
		mounted, err := isMountPoint(dir)
		if err != nil {
			return err
		}
		if !mounted {
			if err := runHost(ctx, "mount", "-t", "ext4", "-o", quotaMountOpts, quotaImage(dir), dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// unmountBelow unmounts p and every mount below it, deepest first.
func unmountBelow(ctx context.Context, p string) error {
	points, err := mountPoints()
	if err != nil {
		return err
	}
	for i := len(points) - 1; i >= 0; i-- { // mountinfo lists parents first
		if m := points[i]; m == p || strings.HasPrefix(m, p+"/") {
			if err := runHost(ctx, "umount", m); err != nil {
				return err
			}
		}
	}
	return nil
}

// isMountPoint reports whether dir is a mount point (of this mount
// namespace: the agent's, which dockerd shares).
func isMountPoint(dir string) (bool, error) {
	points, err := mountPoints()
	if err != nil {
		return false, err
	}
	for _, m := range points {
		if m == dir {
			return true, nil
		}
	}
	return false, nil
}

// mountInfo is one line of /proc/self/mountinfo: the mount point, its
// per-mount options and its source.
type mountInfo struct {
	point, opts, source string
}

func mountPoints() ([]string, error) {
	infos, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	points := make([]string, len(infos))
	for i, m := range infos {
		points[i] = m.point
	}
	return points, nil
}

func readMountInfo() ([]mountInfo, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("%w: read mountinfo: %w", ErrDocker, err)
	}
	var out []mountInfo
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// id parent major:minor root point opts [optional...] - fstype source superopts
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		m := mountInfo{point: unescapeMount(f[4]), opts: f[5]}
		for i := 6; i < len(f)-2; i++ {
			if f[i] == "-" {
				m.source = f[i+2]
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// exitedWith reports whether err is a command's exit with code.
func exitedWith(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

// runHost runs a host command, with its output in the error.
func runHost(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w: %s", ErrDocker, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
