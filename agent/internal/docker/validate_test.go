package docker

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/mount"
	"github.com/google/go-cmp/cmp"
)

// newOfflineClient is a Client for the pure parts (validation), with a
// resolved temporary data directory and no daemon.
func newOfflineClient(t *testing.T) *Client {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Client{dataDir: dir, serverID: "srv-1", sandbox: DefaultHostSandbox(), networks: map[string]bool{}}
}

func TestResolveSource(t *testing.T) {
	c := newOfflineClient(t)
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(c.dataDir, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(c.dataDir, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(c.dataDir, "evil-tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(c.dataDir, "inside"), filepath.Join(c.dataDir, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(c.dataDir, "inside", "up")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		src     string
		want    string // when wantErr is false
		wantErr bool
	}{
		{name: "relative new dir", src: "ws-1/home", want: filepath.Join(c.dataDir, "ws-1/home")},
		{name: "relative existing dir", src: "inside", want: filepath.Join(c.dataDir, "inside")},
		{name: "dot segments that stay inside", src: "a/../ws-2/./home", want: filepath.Join(c.dataDir, "ws-2/home")},
		{name: "absolute inside", src: filepath.Join(c.dataDir, "ws-3"), want: filepath.Join(c.dataDir, "ws-3")},
		{name: "symlink to inside is resolved", src: "alias/sub", want: filepath.Join(c.dataDir, "inside/sub")},
		{name: "empty", src: "", wantErr: true},
		{name: "data dir itself", src: ".", wantErr: true},
		{name: "absolute data dir itself", src: c.dataDir, wantErr: true},
		{name: "parent escape", src: "../etc", wantErr: true},
		{name: "deep parent escape", src: "a/../../etc", wantErr: true},
		{name: "absolute outside", src: "/etc", wantErr: true},
		{name: "absolute prefix trick", src: c.dataDir + "-other/x", wantErr: true},
		{name: "symlink to /etc", src: "evil", wantErr: true},
		{name: "below symlink to /etc", src: "evil/cron.d", wantErr: true},
		{name: "below symlink outside, not existing yet", src: "evil-tmp/new/dir", wantErr: true},
		{name: "symlink to the data dir itself", src: "inside/up", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveSource(c.dataDir, tt.src)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("resolveSource(%q) = %q, %v; want ErrBadRequest", tt.src, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveSource(%q): %v", tt.src, err)
			}
			if got != tt.want {
				t.Errorf("resolveSource(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestEnsureMountDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to 1000:1000 needs root (as the agent runs)")
	}
	c := newOfflineClient(t)
	t.Run("creates with mode and owner", func(t *testing.T) {
		p := filepath.Join(c.dataDir, "ws", "home")
		if err := ensureMountDir(c.dataDir, p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got, want := fi.Mode().Perm(), os.FileMode(0o755); got != want {
			t.Errorf("mode: got %v, want %v", got, want)
		}
		if st.Uid != mountUID || st.Gid != mountGID {
			t.Errorf("owner: got %d:%d, want %d:%d", st.Uid, st.Gid, mountUID, mountGID)
		}
	})
	t.Run("keeps an existing dir as it is", func(t *testing.T) {
		p := filepath.Join(c.dataDir, "kept")
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := ensureMountDir(c.dataDir, p); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
			t.Errorf("mode: got %v, want %v", got, want)
		}
	})
	t.Run("refuses a file", func(t *testing.T) {
		p := filepath.Join(c.dataDir, "file")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ensureMountDir(c.dataDir, p); !errors.Is(err, ErrBadRequest) {
			t.Errorf("got %v, want ErrBadRequest", err)
		}
	})
}

func TestBuildCreateRefusals(t *testing.T) {
	c := newOfflineClient(t)
	if err := os.Symlink("/", filepath.Join(c.dataDir, "root")); err != nil {
		t.Fatal(err)
	}
	ok := func() wire.CreateContainerRequest {
		return wire.CreateContainerRequest{Name: "ws", Image: "img", Resources: wire.Resources{CPU: 1, MemoryMB: 512}}
	}
	tests := []struct {
		name   string
		mutate func(*wire.CreateContainerRequest)
	}{
		{"empty name", func(r *wire.CreateContainerRequest) { r.Name = " " }},
		{"empty image", func(r *wire.CreateContainerRequest) { r.Image = "" }},
		{"privileged", func(r *wire.CreateContainerRequest) { r.Privileged = true }},
		{"host network", func(r *wire.CreateContainerRequest) { r.NetworkMode = "host" }},
		{"host network upper case", func(r *wire.CreateContainerRequest) { r.NetworkMode = "HOST" }},
		{"container network", func(r *wire.CreateContainerRequest) { r.NetworkMode = "container:abc" }},
		{"host pid", func(r *wire.CreateContainerRequest) { r.PidMode = "host" }},
		{"container pid", func(r *wire.CreateContainerRequest) { r.PidMode = "container:abc" }},
		{"host ipc", func(r *wire.CreateContainerRequest) { r.IpcMode = "host" }},
		{"container ipc", func(r *wire.CreateContainerRequest) { r.IpcMode = "container:abc" }},
		{"negative cpu", func(r *wire.CreateContainerRequest) { r.Resources.CPU = -1 }},
		{"negative memory", func(r *wire.CreateContainerRequest) { r.Resources.MemoryMB = -1 }},
		{"relative target", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "ws/home", Target: "home/dev"}}
		}},
		{"mount escape", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "../etc", Target: "/x"}}
		}},
		{"mount absolute outside", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "/etc", Target: "/x"}}
		}},
		{"mount through symlink to /", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "root/etc", Target: "/x"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok()
			tt.mutate(&req)
			if _, _, _, err := c.buildCreate(req); !errors.Is(err, ErrBadRequest) {
				t.Errorf("got %v, want ErrBadRequest", err)
			}
		})
	}
	t.Run("a valid request passes", func(t *testing.T) {
		if _, _, _, err := c.buildCreate(ok()); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
}

func TestBuildCreate(t *testing.T) {
	c := newOfflineClient(t)
	req := wire.CreateContainerRequest{
		Name:        "workspace-abc",
		Image:       "berth/workspace:dev",
		Cmd:         []string{"sleep", "infinity"},
		Env:         map[string]string{"B": "2", "A": "1"},
		Labels:      map[string]string{wire.LabelUserID: "u-1", wire.LabelManaged: "false", wire.LabelServerID: "evil"},
		Mounts:      []wire.Mount{{Source: "abc/home", Target: "/home/dev/"}, {Source: "shared", Target: "/opt/shared", ReadOnly: true}},
		Resources:   wire.Resources{CPU: 1.5, MemoryMB: 2048},
		User:        "dev",
		WorkingDir:  "/home/dev",
		Hostname:    "ws-abc",
		WorkspaceID: "abc",
		Epoch:       42,
	}
	cfg, hostCfg, _, err := c.buildCreate(req)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		wire.LabelUserID:         "u-1",
		wire.LabelManaged:        "true",
		wire.LabelServerID:       "srv-1",
		wire.LabelEpoch:          "42",
		wire.LabelPodexWorkspace: "true",
		wire.LabelWorkspaceID:    "abc",
	}
	if diff := cmp.Diff(wantLabels, cfg.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"A=1", "B=2"}, cfg.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeBind, Source: filepath.Join(c.dataDir, "abc/home"), Target: "/home/dev"},
		{Type: mount.TypeBind, Source: filepath.Join(c.dataDir, "shared"), Target: "/opt/shared", ReadOnly: true},
	}
	if diff := cmp.Diff(wantMounts, hostCfg.Mounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if got, want := hostCfg.NanoCPUs, int64(1_500_000_000); got != want {
		t.Errorf("NanoCPUs: got %d, want %d", got, want)
	}
	if got, want := hostCfg.Memory, int64(2048<<20); got != want {
		t.Errorf("Memory: got %d, want %d", got, want)
	}
	if got, want := hostCfg.MemorySwap, hostCfg.Memory; got != want {
		t.Errorf("MemorySwap: got %d, want %d (no swap beyond the limit)", got, want)
	}
	if hostCfg.Init == nil || !*hostCfg.Init {
		t.Errorf("Init: got %v, want true", hostCfg.Init)
	}
	if hostCfg.Privileged {
		t.Errorf("Privileged: got true, want false")
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "abc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("buildCreate created mount dirs (stat err %v); it must only validate", err)
	}

	t.Run("no workspace id, no podex labels", func(t *testing.T) {
		cfg, _, _, err := c.buildCreate(wire.CreateContainerRequest{Name: "x", Image: "y"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{wire.LabelManaged: "true", wire.LabelServerID: "srv-1", wire.LabelEpoch: "0"}
		if diff := cmp.Diff(want, cfg.Labels); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
	})
	t.Run("zero resources set no limits", func(t *testing.T) {
		_, hostCfg, _, err := c.buildCreate(wire.CreateContainerRequest{Name: "x", Image: "y"})
		if err != nil {
			t.Fatal(err)
		}
		if hostCfg.NanoCPUs != 0 || hostCfg.Memory != 0 || hostCfg.MemorySwap != 0 {
			t.Errorf("got NanoCPUs %d Memory %d MemorySwap %d, want all 0", hostCfg.NanoCPUs, hostCfg.Memory, hostCfg.MemorySwap)
		}
	})
}

// The exported validators decide without the file system: the data
// directory need not exist.
func TestValidatorsArePure(t *testing.T) {
	const dataDir = "/nonexistent/berth-data"
	ok := wire.CreateContainerRequest{Name: "ws", Image: "img", Mounts: []wire.Mount{{Source: "w1/home", Target: "/home/dev"}}}
	withMount := func(src string) wire.CreateContainerRequest {
		r := ok
		r.Mounts = []wire.Mount{{Source: src, Target: "/x"}}
		return r
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"valid create", ValidateCreate(ok, dataDir), nil},
		{"absolute mount inside", ValidateCreate(withMount(dataDir+"/w1"), dataDir), nil},
		{"mount escaping", ValidateCreate(withMount("w1/../../etc"), dataDir), ErrBadRequest},
		{"mount of the data dir itself", ValidateCreate(withMount("."), dataDir), ErrBadRequest},
		{"absolute mount outside", ValidateCreate(withMount("/etc"), dataDir), ErrBadRequest},
		{"empty mount source", ValidateCreate(withMount(""), dataDir), ErrBadRequest},
		{"data path", ValidateDataPath(dataDir, "workspaces/w1"), nil},
		{"absolute data path", ValidateDataPath(dataDir, dataDir+"/workspaces/w1"), ErrBadRequest},
		{"data path escaping", ValidateDataPath(dataDir, "../w1"), ErrBadRequest},
		{"exec", ValidateExec(wire.ExecRequest{Cmd: []string{"true"}}), nil},
		{"exec without command", ValidateExec(wire.ExecRequest{}), ErrBadRequest},
		{"exec with negative timeout", ValidateExec(wire.ExecRequest{Cmd: []string{"true"}, TimeoutSeconds: -1}), ErrBadRequest},
		{"image ref", ValidateImageRef("berth/workspace:dev"), nil},
		{"malformed image ref", ValidateImageRef("bad ref!"), ErrBadRequest},
		{"resources", ValidateResources(wire.Resources{CPU: 0.5, MemoryMB: 512}), nil},
		{"NaN cpu", ValidateResources(wire.Resources{CPU: math.NaN()}), ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == nil && tt.err != nil {
				t.Errorf("got %v, want nil", tt.err)
			}
			if tt.want != nil && !errors.Is(tt.err, tt.want) {
				t.Errorf("got %v, want %v", tt.err, tt.want)
			}
		})
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("validation created %s (stat: %v)", dataDir, err)
	}
}
