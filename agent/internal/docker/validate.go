package docker

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"berth/shared/wire"

	"github.com/distribution/reference"
)

// This file holds the adapter's decisions that need neither Docker nor the
// file system: what a request may ask for, and which labels a container
// gets. They are exported so that the in-memory fake (dockerfake) applies
// the very same rules; the adapter applies them first, then checks what
// needs the host (symlinks below the data directory, the image, the name).

// ValidateCreate refuses, with ErrBadRequest, a create request berth never
// runs: no name or image; privileged mode; the host's or another
// container's network, PID or IPC namespace; negative or absurd limits; a
// mount whose target is not absolute or whose source does not lie strictly
// below dataDir; a weakened sandbox without its exception (validateSandbox). The mount check here is lexical; Create then resolves
// symlinks (resolveSource) before anything is made.
func ValidateCreate(req wire.CreateContainerRequest, dataDir string) error {
	if strings.TrimSpace(req.Name) == "" {
		return fmt.Errorf("%w: container name is required", ErrBadRequest)
	}
	if strings.TrimSpace(req.Image) == "" {
		return fmt.Errorf("%w: image is required", ErrBadRequest)
	}
	if req.Privileged {
		return fmt.Errorf("%w: privileged containers are not allowed", ErrBadRequest)
	}
	for _, ns := range []struct{ name, mode string }{
		{"network_mode", req.NetworkMode},
		{"pid_mode", req.PidMode},
		{"ipc_mode", req.IpcMode},
	} {
		if err := checkNamespace(ns.name, ns.mode); err != nil {
			return err
		}
	}
	if err := ValidateResources(req.Resources); err != nil {
		return err
	}
	if err := validateSandbox(req); err != nil {
		return err
	}
	if g := req.GPU; g != nil && (g.Count == 0 || g.Count < -1 || len(g.Capabilities) == 0) {
		return fmt.Errorf("%w: gpu request %+v: want a count of at least 1 (or -1 for all) and capabilities", ErrBadRequest, *g)
	}
	for _, m := range req.Mounts {
		if !path.IsAbs(m.Target) {
			return fmt.Errorf("%w: mount target %q must be an absolute path", ErrBadRequest, m.Target)
		}
		if _, err := lexicalSource(dataDir, m.Source); err != nil {
			return err
		}
	}
	return nil
}

// checkNamespace refuses sharing the host's or another container's
// namespace.
func checkNamespace(field, mode string) error {
	m := strings.ToLower(strings.TrimSpace(mode))
	if m == "host" || strings.HasPrefix(m, "container:") {
		return fmt.Errorf("%w: %s %q is not allowed: workspaces never share the host's or another container's namespaces",
			ErrBadRequest, field, mode)
	}
	return nil
}

// ValidateResources refuses limits that are negative or not numbers
// (ErrBadRequest). Zero means "no limit" at create and "unchanged" at
// update.
func ValidateResources(r wire.Resources) error {
	if r.CPU < 0 || math.IsNaN(r.CPU) || math.IsInf(r.CPU, 0) {
		return fmt.Errorf("%w: cpu %v must be a non-negative number of cores", ErrBadRequest, r.CPU)
	}
	if r.MemoryMB < 0 || r.MemoryMB > math.MaxInt64/mib {
		return fmt.Errorf("%w: memory_mb %d out of range", ErrBadRequest, r.MemoryMB)
	}
	return nil
}

// ValidateExec refuses an exec without a command or with a negative
// timeout (ErrBadRequest).
func ValidateExec(req wire.ExecRequest) error {
	if len(req.Cmd) == 0 {
		return fmt.Errorf("%w: exec needs a command", ErrBadRequest)
	}
	if req.TimeoutSeconds < 0 {
		return fmt.Errorf("%w: timeout_seconds %d must not be negative", ErrBadRequest, req.TimeoutSeconds)
	}
	return nil
}

// ValidateTTY refuses a TTY exec without a command, or with only one of
// rows and cols (ErrBadRequest).
func ValidateTTY(req wire.TTYRequest) error {
	if len(req.Cmd) == 0 {
		return fmt.Errorf("%w: tty needs a command", ErrBadRequest)
	}
	if (req.Rows == 0) != (req.Cols == 0) {
		return fmt.Errorf("%w: tty size %dx%d: give both rows and cols, or neither", ErrBadRequest, req.Rows, req.Cols)
	}
	return nil
}

// ValidateTTYSize refuses a terminal size with a zero side (ErrBadRequest).
func ValidateTTYSize(rows, cols uint16) error {
	if rows == 0 || cols == 0 {
		return fmt.Errorf("%w: tty size %dx%d: rows and cols must be positive", ErrBadRequest, rows, cols)
	}
	return nil
}

// ValidateImageRef refuses a malformed image reference (ErrBadRequest).
func ValidateImageRef(ref string) error {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Errorf("%w: image reference %q: %w", ErrBadRequest, ref, err)
	}
	return nil
}

// ValidateDataPath refuses, with ErrBadRequest, a data path that is
// absolute or does not lie strictly below dataDir (lexically; RemoveData
// then resolves symlinks).
func ValidateDataPath(dataDir, rel string) error {
	if filepath.IsAbs(rel) {
		return fmt.Errorf("%w: data path %q must be relative to the data directory", ErrBadRequest, rel)
	}
	_, err := lexicalSource(dataDir, rel)
	return err
}

// ContainerLabels are the labels a container made for req gets: the
// request's own, then berth's, which win (berth.managed, berth.server_id,
// berth.epoch, and the podex workspace labels when req names a workspace).
func ContainerLabels(req wire.CreateContainerRequest, serverID string) map[string]string {
	labels := make(map[string]string, len(req.Labels)+5)
	for k, v := range req.Labels {
		labels[k] = v
	}
	labels[wire.LabelManaged] = "true"
	labels[wire.LabelServerID] = serverID
	labels[wire.LabelEpoch] = strconv.FormatInt(req.Epoch, 10)
	if req.WorkspaceID != "" {
		labels[wire.LabelPodexWorkspace] = "true"
		labels[wire.LabelWorkspaceID] = req.WorkspaceID
	}
	return labels
}
