package docker

import (
	"berth/shared/wire"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// quotaDir is a data directory where loop-mounted quotas work, or skips.
func quotaDir(t *testing.T) (*Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts loop images: not in -short")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := probeQuota(context.Background(), dir); err != nil {
		t.Skipf("loop-mounted quotas do not work here (root, loop devices, mkfs.ext4 needed): %v", err)
	}
	c := &Client{dataDir: dir, log: hclog.NewNullLogger(), sandbox: HostSandbox{Quota: true}}
	t.Cleanup(func() { _ = unmountBelow(context.Background(), dir) })
	return c, dir
}

// A quota'd home: files already there move into the image; writing past
// the size fails with ENOSPC; the mount is nosuid,nodev; RemoveData
// unmounts it; a Fresh create drops the image.
func TestQuotaHome(t *testing.T) {
	c, data := quotaDir(t)
	ctx := context.Background()
	home := filepath.Join(data, "w1", "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "before.txt"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	desc, err := c.ensureQuota(ctx, home, 1)
	if err != nil {
		t.Fatal(err)
	}
	if desc != "1 GB (loop ext4)" {
		t.Errorf("description %q", desc)
	}
	if _, err := os.Stat(filepath.Join(home, "lost+found")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lost+found in the home: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(home, "before.txt")); err != nil || string(b) != "kept" {
		t.Errorf("file from before the quota: %q, %v", b, err)
	}
	infos, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range infos {
		if m.point == home {
			found = true
			if !hasOpts(m.opts, "nosuid", "nodev") {
				t.Errorf("home mount options %q: want nosuid,nodev", m.opts)
			}
		}
	}
	if !found {
		t.Fatalf("%s is not mounted", home)
	}
	// Again: idempotent, nothing stacked.
	if _, err := c.ensureQuota(ctx, home, 1); err != nil {
		t.Fatal(err)
	}
	// A bigger tier grows the mounted file system; a smaller one keeps it.
	if desc, err := c.ensureQuota(ctx, home, 2); err != nil || desc != "2 GB (loop ext4)" {
		t.Fatalf("grow to 2 GB: %q, %v", desc, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(home, &st); err != nil || int64(st.Blocks)*st.Bsize < 3<<29 {
		t.Errorf("after growing to 2 GB the home has %d bytes (%v), want about 2 GiB", int64(st.Blocks)*st.Bsize, err)
	}
	if desc, err := c.ensureQuota(ctx, home, 1); err != nil || !strings.Contains(desc, "kept from before") {
		t.Errorf("shrink to 1 GB: %q, %v; want the 2 GB kept and said so", desc, err)
	}

	f, err := os.Create(filepath.Join(home, "big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20)
	var werr error
	for written := 0; written < 3<<30 && werr == nil; written += len(buf) {
		_, werr = f.Write(buf)
	}
	f.Close()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("writing 3 GiB into a 2 GB home: got %v, want ENOSPC", werr)
	}

	if err := c.RemoveData("w1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountPoint(home); ok {
		t.Error("RemoveData left the home mounted")
	}
	if _, err := os.Stat(filepath.Join(data, "w1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveData left %v", err)
	}
}

func TestDropQuota(t *testing.T) {
	c, data := quotaDir(t)
	ctx := context.Background()
	home := filepath.Join(data, "w2", "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ensureQuota(ctx, home, 1); err != nil {
		t.Fatal(err)
	}
	if err := dropQuota(ctx, home); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountPoint(home); ok {
		t.Error("still mounted")
	}
	if _, err := os.Stat(quotaImage(home)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("image left: %v", err)
	}
	// remountQuotas mounts an image that is not mounted (host restart).
	if _, err := c.ensureQuota(ctx, home, 1); err != nil {
		t.Fatal(err)
	}
	if err := unmountBelow(ctx, home); err != nil {
		t.Fatal(err)
	}
	if err := remountQuotas(ctx, []string{home, filepath.Join(data, "no-image")}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountPoint(home); !ok {
		t.Error("remountQuotas did not mount the home")
	}
	if err := secureDataDir(ctx, data); err != nil {
		t.Fatal(err)
	}
	infos, _ := readMountInfo()
	var opts string
	for _, m := range infos {
		if m.point == data {
			opts = m.opts
		}
	}
	if !strings.Contains(opts, "nosuid") || !strings.Contains(opts, "nodev") {
		t.Errorf("data dir options %q: want nosuid,nodev", opts)
	}
}

// On a host with quotas, a quota that cannot be applied fails the create
// (it is not reported as a degraded sandbox): here the home is already
// another file system's mount point, which berth never stacks on.
func TestQuotaFailureFailsCreate(t *testing.T) {
	c, data := quotaDir(t)
	ctx := context.Background()
	home, other := filepath.Join(data, "w3", "home"), filepath.Join(data, "other")
	for _, d := range []string{home, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount(other, home, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	rep := &wire.SandboxReport{}
	err := c.applyQuota(ctx, home, 1, rep)
	if err == nil || !strings.Contains(err.Error(), "mount point without berth's image") {
		t.Fatalf("applyQuota on a foreign mount: %v, want the refusal", err)
	}
	if len(rep.Degraded) != 0 || rep.DiskQuota != "" {
		t.Errorf("report %+v: a failed quota is an error, not a degraded sandbox", rep)
	}
}
