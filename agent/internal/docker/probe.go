package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/network"
)

// SandboxOptions are the agent's sandbox settings.
type SandboxOptions struct {
	Egress     string // EgressOpen (default) or EgressNone: BERTH_EGRESS
	DiskQuota  bool   // try loop-mounted quotas (BERTH_DISK_QUOTA=loop); false = off
	RunscState string // file the host setup writes its runsc probe's outcome to (host-entrypoint.sh)
}

// ProbeSandbox decides, once at start, what this host's sandbox can be:
// whether dockerd has runsc (the host setup registers it only after a
// probe container ran under it), whether loop-mounted disk quotas work in
// the data directory; it remounts the data directory nosuid,nodev and makes
// the workspace network. What it finds is logged, and reported on every
// create (wire.SandboxReport) so the scheduler records an event.
func (c *Client) ProbeSandbox(ctx context.Context, opts SandboxOptions) (HostSandbox, error) {
	h := DefaultHostSandbox()
	switch opts.Egress {
	case "", EgressOpen:
	case EgressNone:
		h.Egress = EgressNone
	default:
		return h, fmt.Errorf("%w: egress %q: want %s or %s", ErrBadRequest, opts.Egress, EgressOpen, EgressNone)
	}
	info, err := c.api.Info(ctx)
	if err != nil {
		return h, wrapErr(err, "docker info")
	}
	if _, ok := info.Runtimes[RuntimeRunsc]; ok {
		h.Runsc, h.RunscNote = true, ""
	} else {
		h.RunscNote = "dockerd has no runsc runtime"
		if b, err := os.ReadFile(opts.RunscState); err == nil && len(b) > 0 {
			h.RunscNote += " (host setup: " + strings.TrimSpace(string(b)) + ")"
		}
	}
	if err := secureDataDir(ctx, c.dataDir); err != nil {
		return h, err
	}
	if opts.DiskQuota {
		if err := probeQuota(ctx, c.dataDir); err != nil {
			h.QuotaNote = "loop-mounted quotas do not work here: " + err.Error()
		} else {
			h.Quota, h.QuotaNote = true, ""
		}
	} else {
		h.QuotaNote = "disk quotas are off (BERTH_DISK_QUOTA=off)"
	}
	c.mu.Lock()
	c.sandbox = h
	c.mu.Unlock()
	if err := c.ensureNetwork(ctx, h.Network()); err != nil {
		return h, err
	}
	if h.Runsc {
		c.log.Info("sandbox: workspaces run under runsc (gVisor)")
	} else {
		c.log.Warn("sandbox: workspaces fall back to runc", "why", h.RunscNote)
	}
	if h.Quota {
		c.log.Info("sandbox: disk quotas enforced (loop-mounted ext4 per home)")
	} else {
		c.log.Warn("sandbox: storage_gb is not enforced", "why", h.QuotaNote)
	}
	c.log.Info("sandbox: workspace network", "network", h.Network(), "egress", h.Egress)
	return h, nil
}

// Sandbox is the host's sandbox as probed (DefaultHostSandbox before).
func (c *Client) Sandbox() HostSandbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sandbox
}

// probeQuota makes, mounts and removes a small image in dataDir.
func probeQuota(ctx context.Context, dataDir string) error {
	dir := filepath.Join(dataDir, ".quota-probe")
	_ = unmountBelow(ctx, dir)
	_ = os.RemoveAll(dir)
	_ = os.Remove(quotaImage(dir))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	defer func() {
		_ = unmountBelow(context.WithoutCancel(ctx), dir)
		_ = os.RemoveAll(dir)
		_ = os.Remove(quotaImage(dir))
	}()
	if err := makeQuotaImage(ctx, quotaImage(dir), 16<<20); err != nil {
		return err
	}
	return runHost(ctx, "mount", "-t", "ext4", "-o", quotaMountOpts, quotaImage(dir), dir)
}

// secureDataDir makes the data directory a mount with nosuid and nodev
// (bound onto itself first if it is not a mount point), so that no home
// below it can give setuid files or device nodes effect, quota or not. Bind
// mounts Docker makes of directories below it keep these flags.
func secureDataDir(ctx context.Context, dir string) error {
	infos, err := readMountInfo()
	if err != nil {
		return err
	}
	var own *mountInfo
	for i := range infos {
		if infos[i].point == dir {
			own = &infos[i] // the last one is the one on top
		}
	}
	if own != nil && hasOpts(own.opts, "nosuid", "nodev") {
		return nil
	}
	if own == nil {
		if err := runHost(ctx, "mount", "--bind", dir, dir); err != nil {
			return fmt.Errorf("data dir %s nosuid,nodev: %w", dir, err)
		}
	}
	if err := runHost(ctx, "mount", "-o", "remount,bind,nosuid,nodev", dir); err != nil {
		return fmt.Errorf("data dir %s nosuid,nodev: %w", dir, err)
	}
	return nil
}

func hasOpts(opts string, want ...string) bool {
	have := strings.Split(opts, ",")
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// Network options of the workspace bridges: no traffic between containers
// on it (each workspace sees only the host and, with open egress, the
// outside).
const optICC = "com.docker.network.bridge.enable_icc"

// ensureNetwork makes berth's workspace network name unless it exists, and
// refuses one that exists with other settings (inter-container traffic on,
// or the wrong egress). Done once per Client and network.
func (c *Client) ensureNetwork(ctx context.Context, name string) error {
	c.mu.Lock()
	done := c.networks[name]
	c.mu.Unlock()
	if done {
		return nil
	}
	internal := name == NetworkInternal
	n, err := c.api.NetworkInspect(ctx, name, network.InspectOptions{})
	switch {
	case isNotFound(err):
		_, err = c.api.NetworkCreate(ctx, name, network.CreateOptions{
			Driver:   "bridge",
			Internal: internal,
			Options:  map[string]string{optICC: "false"},
			Labels:   map[string]string{"berth.managed": "true"},
		})
		if err != nil && !errorsIsConflict(err) {
			return wrapErr(err, "create network %s", name)
		}
	case err != nil:
		return wrapErr(err, "inspect network %s", name)
	case n.Options[optICC] != "false" || n.Internal != internal:
		return fmt.Errorf("%w: network %s exists with inter-container traffic %q and internal=%v; want false and %v: remove it (docker network rm %s) and restart the agent",
			ErrDocker, name, n.Options[optICC], n.Internal, internal, name)
	}
	c.mu.Lock()
	c.networks[name] = true
	c.mu.Unlock()
	return nil
}

// errorsIsConflict: a concurrent create of the same network won.
func errorsIsConflict(err error) bool {
	return errors.Is(wrapErr(err, ""), ErrConflict) || strings.Contains(err.Error(), "already exists")
}
