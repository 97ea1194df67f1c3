package docker

import (
	"context"
	"fmt"
	"math"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	units "github.com/docker/go-units"
)

const mib = 1 << 20

// defaultNetwork is the network Docker puts a container on by default.
const defaultNetwork = "bridge"

// Create validates req, creates the directories of its mounts under the data
// directory (a Fresh mount's directory is emptied first), creates the container with berth's labels and limits and, when
// req.Start is set, starts it. If the start fails the container is removed
// again before the error is returned, so nothing half-made is left behind.
// It returns the inspected container.
//
// Errors: ErrBadRequest (refused or malformed request, before anything is
// created), ErrImageNotFound (image not in the local daemon: nothing is
// pulled), ErrConflict (name in use), ErrDocker.
//
// Limits: NanoCPUs = CPU×1e9 and Memory = MemoryMB MiB with MemorySwap equal
// to Memory (no swap beyond the limit); a zero value means no limit. The
// container runs with Docker's init (tini) as PID 1 so zombies are reaped
// and SIGTERM reaches the command.
func (c *Client) Create(ctx context.Context, req wire.CreateContainerRequest) (wire.Container, error) {
	cfg, hostCfg, rep, err := c.buildCreate(req)
	if err != nil {
		return wire.Container{}, err
	}
	if _, err := c.api.ImageInspect(ctx, req.Image); err != nil {
		if isNotFound(err) {
			return wire.Container{}, fmt.Errorf("%w: %s is not in the local daemon: %w", ErrImageNotFound, req.Image, err)
		}
		return wire.Container{}, wrapErr(err, "inspect image %s", req.Image)
	}
	rep.DiskQuota = "none: no mount asks for one"
	for i, m := range hostCfg.Mounts { // one per req.Mounts, in order
		if req.Mounts[i].Fresh {
			if err := dropQuota(ctx, m.Source); err != nil {
				return wire.Container{}, err
			}
			if err := os.RemoveAll(m.Source); err != nil {
				return wire.Container{}, fmt.Errorf("%w: empty mount dir %q: %w", ErrDocker, m.Source, err)
			}
		}
		if err := ensureMountDir(c.dataDir, m.Source); err != nil {
			return wire.Container{}, err
		}
		if gb := req.Mounts[i].QuotaGB; gb > 0 {
			if err := c.applyQuota(ctx, m.Source, gb, rep); err != nil {
				return wire.Container{}, err
			}
		}
	}
	if hostCfg.NetworkMode != "none" && hostCfg.NetworkMode != "bridge" {
		if err := c.ensureNetwork(ctx, string(hostCfg.NetworkMode)); err != nil {
			return wire.Container{}, err
		}
	}
	c.logSandbox(req, rep)
	created, err := c.api.ContainerCreate(ctx, cfg, hostCfg, nil, nil, req.Name)
	if err != nil {
		return wire.Container{}, wrapErr(err, "create container %s", req.Name)
	}
	for _, w := range created.Warnings {
		c.log.Warn("docker warning on create", "container", req.Name, "warning", w)
	}
	if req.Start {
		if err := c.api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			startErr := fmt.Errorf("%w: %w", ErrStartFailed, wrapErr(err, "start container %s", req.Name))
			c.removeAfterFailure(ctx, created.ID)
			return wire.Container{}, startErr
		}
	}
	inspected, err := c.api.ContainerInspect(ctx, created.ID)
	if err != nil {
		return wire.Container{}, wrapErr(err, "inspect container %s", req.Name)
	}
	c.log.Debug("container created", "id", created.ID, "name", req.Name, "started", req.Start)
	out := toWireContainer(inspected, time.Now())
	out.Sandbox = rep
	return out, nil
}

// applyQuota backs dir with a file system of gb GiB where the host allows
// it; where it does not, the home stays a plain directory and rep says why
// (a degraded sandbox, not a failed create). Where the host allows it and
// it fails, the create fails: the home may be half moved into its image
// (or its image unmounted to grow), and a container on the bare directory
// would hide the user's files.
func (c *Client) applyQuota(ctx context.Context, dir string, gb int64, rep *wire.SandboxReport) error {
	h := c.Sandbox()
	if !h.Quota {
		rep.DiskQuota = "none: " + h.QuotaNote
		rep.Degraded = append(rep.Degraded, fmt.Sprintf("storage_gb %d not enforced: %s", gb, h.QuotaNote))
		return nil
	}
	desc, err := c.ensureQuota(ctx, dir, gb)
	if err != nil {
		return fmt.Errorf("disk quota of %s: %w", dir, err)
	}
	rep.DiskQuota = desc
	return nil
}

// logSandbox logs a create's sandbox: exceptions the request asked for
// (always, at warn: each weakens the sandbox) and what the host could not
// apply.
func (c *Client) logSandbox(req wire.CreateContainerRequest, rep *wire.SandboxReport) {
	if len(rep.Exceptions) > 0 {
		c.log.Warn("sandbox weakened by the request's exceptions", "container", req.Name,
			"workspace_id", req.WorkspaceID, "exceptions", rep.Exceptions)
	}
	if len(rep.Degraded) > 0 {
		c.log.Warn("sandbox degraded on this host", "container", req.Name, "workspace_id", req.WorkspaceID,
			"degraded", rep.Degraded)
	}
	c.log.Debug("sandbox", "container", req.Name, "runtime", rep.Runtime, "network", rep.Network, "disk_quota", rep.DiskQuota)
}

// removeAfterFailure force-removes a container Create made, even when ctx is
// already cancelled.
func (c *Client) removeAfterFailure(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		c.log.Error("remove container after failed start", "id", id, "error", err)
	}
}

// buildCreate validates req and turns it into Docker's create parameters,
// with the host's sandbox applied (sandboxFor) and reported. Mount sources
// in the result are resolved host paths; nothing is created.
func (c *Client) buildCreate(req wire.CreateContainerRequest) (*container.Config, *container.HostConfig, *wire.SandboxReport, error) {
	if err := ValidateCreate(req, c.dataDir); err != nil {
		return nil, nil, nil, err
	}
	var mounts []mount.Mount
	for _, m := range req.Mounts {
		source, err := resolveSource(c.dataDir, m.Source)
		if err != nil {
			return nil, nil, nil, err
		}
		mounts = append(mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   source,
			Target:   path.Clean(m.Target),
			ReadOnly: m.ReadOnly,
		})
	}
	cfg := &container.Config{
		Image:      req.Image,
		Cmd:        req.Cmd,
		Env:        envList(req.Env),
		Labels:     ContainerLabels(req, c.serverID),
		User:       req.User,
		WorkingDir: req.WorkingDir,
		Hostname:   req.Hostname,
	}
	initOn := true
	hostCfg := &container.HostConfig{
		PidMode:   container.PidMode(req.PidMode),
		IpcMode:   container.IpcMode(req.IpcMode),
		Mounts:    mounts,
		Init:      &initOn,
		Resources: dockerResources(req.Resources),
	}
	if g := req.GPU; g != nil {
		hostCfg.DeviceRequests = []container.DeviceRequest{{Count: g.Count, Capabilities: [][]string{g.Capabilities}}}
	}
	rep, err := sandboxFor(req, c.sandbox, hostCfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, hostCfg, &rep, nil
}

// dockerResources applies berth's limit rules: a zero field sets nothing.
func dockerResources(r wire.Resources) container.Resources {
	var res container.Resources
	if r.CPU > 0 {
		res.NanoCPUs = int64(math.Round(r.CPU * 1e9))
	}
	if r.MemoryMB > 0 {
		res.Memory = r.MemoryMB * mib
		res.MemorySwap = res.Memory // no swap beyond the limit
	}
	return res
}

func envList(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// owned inspects id and answers ErrNotFound unless it is a berth container.
// Later calls use the returned full ID, never the caller's name or prefix.
func (c *Client) owned(ctx context.Context, id string) (container.InspectResponse, error) {
	if strings.TrimSpace(id) == "" {
		return container.InspectResponse{}, fmt.Errorf("%w: container id is required", ErrBadRequest)
	}
	ctr, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return container.InspectResponse{}, wrapErr(err, "inspect container %s", id)
	}
	if ctr.ContainerJSONBase == nil || ctr.Config == nil || ctr.Config.Labels[wire.LabelManaged] != "true" {
		return container.InspectResponse{}, fmt.Errorf("%w: container %s is not managed by berth", ErrNotFound, id)
	}
	return ctr, nil
}

// Start starts a berth container. Starting a running container is a no-op
// (the daemon answers 304, which the SDK treats as success).
func (c *Client) Start(ctx context.Context, id string) error {
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return err
	}
	return c.start(ctx, ctr)
}

// start starts an inspected container, its quota'd homes mounted first
// (a restarted host has none mounted).
func (c *Client) start(ctx context.Context, ctr container.InspectResponse) error {
	if err := remountQuotas(ctx, bindSources(ctr)); err != nil {
		return err
	}
	if err := c.api.ContainerStart(ctx, ctr.ID, container.StartOptions{}); err != nil {
		return wrapErr(err, "start container %s", ctr.Name)
	}
	return nil
}

// bindSources are the host directories bound into ctr.
func bindSources(ctr container.InspectResponse) []string {
	if ctr.HostConfig == nil {
		return nil
	}
	var out []string
	for _, m := range ctr.HostConfig.Mounts {
		if m.Type == mount.TypeBind {
			out = append(out, m.Source)
		}
	}
	return out
}

// Stop sends SIGTERM and, after timeout, SIGKILL. timeout is rounded up to
// whole seconds; a negative timeout uses the container's own stop timeout.
// Stopping a stopped container is a no-op (304 from the daemon).
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return err
	}
	var opts container.StopOptions
	if timeout >= 0 {
		secs := int(math.Ceil(timeout.Seconds()))
		opts.Timeout = &secs
	}
	if err := c.api.ContainerStop(ctx, ctr.ID, opts); err != nil {
		return wrapErr(err, "stop container %s", id)
	}
	return nil
}

// Remove deletes a berth container and its anonymous volumes. Without force
// a running container is refused with ErrConflict. Bind-mounted data under
// the data directory is kept.
func (c *Client) Remove(ctx context.Context, id string, force bool) error {
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return err
	}
	if err := c.api.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: force, RemoveVolumes: true}); err != nil {
		return wrapErr(err, "remove container %s", id)
	}
	return nil
}

// Inspect returns one berth container.
func (c *Client) Inspect(ctx context.Context, id string) (wire.Container, error) {
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return wire.Container{}, err
	}
	return toWireContainer(ctr, time.Now()), nil
}

// List returns every berth container (label berth.managed=true), running
// or not, inspected so that limits and times are filled in. A container
// removed between the list and its inspection is left out.
func (c *Client) List(ctx context.Context) ([]wire.Container, error) {
	summaries, err := c.api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", wire.LabelManaged+"=true")),
	})
	if err != nil {
		return nil, wrapErr(err, "list containers")
	}
	now := time.Now()
	out := make([]wire.Container, 0, len(summaries))
	for _, s := range summaries {
		ctr, err := c.api.ContainerInspect(ctx, s.ID)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, wrapErr(err, "inspect container %s", s.ID)
		}
		out = append(out, toWireContainer(ctr, now))
	}
	return out, nil
}

// Update changes a berth container's CPU and memory limits. A zero field is
// left unchanged (Docker's rule); memory sets MemorySwap to the same value.
func (c *Client) Update(ctx context.Context, id string, r wire.Resources) error {
	if err := ValidateResources(r); err != nil {
		return err
	}
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return err
	}
	if isRunsc(ctr) && ctr.State != nil && ctr.State.Running {
		return c.updateRestarting(ctx, ctr, r)
	}
	resp, err := c.api.ContainerUpdate(ctx, ctr.ID, container.UpdateConfig{Resources: dockerResources(r)})
	if err != nil {
		return wrapErr(err, "update container %s", id)
	}
	for _, w := range resp.Warnings {
		c.log.Warn("docker warning on update", "container", id, "warning", w)
	}
	return nil
}

// updateRestarting changes the limits of a running runsc container, which
// runsc cannot do live (it has no `update` command): stop, update, start.
// The workspace's processes restart; its home and container stay.
func (c *Client) updateRestarting(ctx context.Context, ctr container.InspectResponse, r wire.Resources) error {
	c.log.Info("runsc cannot change limits live: restarting the container to apply them", "container", ctr.Name, "resources", r)
	secs := 10
	if err := c.api.ContainerStop(ctx, ctr.ID, container.StopOptions{Timeout: &secs}); err != nil {
		return wrapErr(err, "stop container %s to update it", ctr.Name)
	}
	_, uerr := c.api.ContainerUpdate(ctx, ctr.ID, container.UpdateConfig{Resources: dockerResources(r)})
	if err := c.start(ctx, ctr); err != nil { // whether the update took or not: never leave it stopped
		return err
	}
	if uerr != nil {
		return wrapErr(uerr, "update container %s", ctr.Name)
	}
	return nil
}

// toWireContainer maps Docker's inspection to the wire type; now is used
// for the human status.
func toWireContainer(ctr container.InspectResponse, now time.Time) wire.Container {
	out := wire.Container{}
	if ctr.ContainerJSONBase != nil {
		out.ID = ctr.ID
		out.Name = strings.TrimPrefix(ctr.Name, "/")
		out.CreatedAt = parseDockerTime(ctr.Created)
		if hc := ctr.HostConfig; hc != nil {
			out.Resources = wire.Resources{CPU: float64(hc.NanoCPUs) / 1e9, MemoryMB: hc.Memory / mib}
		}
		if st := ctr.State; st != nil {
			out.State = st.Status
			out.ExitCode = st.ExitCode
			out.OOMKilled = st.OOMKilled
			out.StartedAt = parseDockerTime(st.StartedAt)
			out.FinishedAt = parseDockerTime(st.FinishedAt)
			out.Status = humanStatus(st, out.StartedAt, out.FinishedAt, now)
		}
	}
	if ctr.Config != nil {
		out.Image = ctr.Config.Image
		out.Labels = ctr.Config.Labels
	}
	out.IPAddress = containerIP(ctr.NetworkSettings)
	return out
}

// containerIP is a container's address: the default bridge's, else that of
// the first of its networks (by name) that gave it one; "" for none.
func containerIP(ns *container.NetworkSettings) string {
	if ns == nil {
		return ""
	}
	names := make([]string, 0, len(ns.Networks))
	for name := range ns.Networks {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { // "bridge" first, then by name
		return names[i] == defaultNetwork || names[j] != defaultNetwork && names[i] < names[j]
	})
	for _, name := range names {
		if ep := ns.Networks[name]; ep != nil && ep.IPAddress != "" {
			return ep.IPAddress
		}
	}
	return ""
}

// parseDockerTime parses Docker's RFC 3339 times; Docker's zero time
// ("0001-01-01T00:00:00Z") and garbage give the zero time.
func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// humanStatus renders a status like `docker ps` does ("Up 5 minutes",
// "Exited (137) 2 seconds ago").
func humanStatus(st *container.State, started, finished, now time.Time) string {
	switch st.Status {
	case container.StateRunning:
		if started.IsZero() {
			return "Up"
		}
		if st.Paused {
			return "Up " + units.HumanDuration(now.Sub(started)) + " (Paused)"
		}
		return "Up " + units.HumanDuration(now.Sub(started))
	case container.StatePaused:
		return "Up " + units.HumanDuration(now.Sub(started)) + " (Paused)"
	case container.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(finished)))
	case container.StateCreated:
		return "Created"
	case container.StateRemoving:
		return "Removal In Progress"
	case container.StateDead:
		return "Dead"
	case container.StateExited:
		if finished.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(finished)))
	default:
		return st.Status
	}
}
