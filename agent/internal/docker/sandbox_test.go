package docker

import (
	"errors"
	"strings"
	"testing"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"
)

// sandboxFields is the part of a HostConfig the sandbox decides.
type sandboxFields struct {
	Runtime     string
	CapDrop     []string
	CapAdd      []string
	SecurityOpt []string
	PidsLimit   *int64
	Ulimits     []*container.Ulimit
	NetworkMode container.NetworkMode
}

func sandboxOf(h *container.HostConfig) sandboxFields {
	return sandboxFields{Runtime: h.Runtime, CapDrop: h.CapDrop, CapAdd: h.CapAdd, SecurityOpt: h.SecurityOpt,
		PidsLimit: h.PidsLimit, Ulimits: h.Ulimits, NetworkMode: h.NetworkMode}
}

func nofile(n int64) *container.Ulimit { return &container.Ulimit{Name: "nofile", Soft: n, Hard: n} }
func nproc(n int64) *container.Ulimit  { return &container.Ulimit{Name: "nproc", Soft: n, Hard: n} }

// The container config built for a create, per host and request: the
// documented capabilities, no-new-privileges, limits per runtime, network.
func TestBuildCreateSandbox(t *testing.T) {
	runsc := HostSandbox{Runsc: true, Egress: EgressOpen, MaxOpenFiles: 1 << 20}
	runc := HostSandbox{RunscNote: "dockerd has no runsc runtime", Egress: EgressOpen, MaxOpenFiles: 1 << 20}
	closed := runsc
	closed.Egress = EgressNone
	lowFiles := runc
	lowFiles.MaxOpenFiles = 20000
	base := func(mut func(*wire.CreateContainerRequest)) wire.CreateContainerRequest {
		r := wire.CreateContainerRequest{Name: "ws", Image: "img", Limits: wire.ProcessLimits{Processes: 1024, OpenFiles: 65536}}
		if mut != nil {
			mut(&r)
		}
		return r
	}
	tests := []struct {
		name       string
		host       HostSandbox
		req        wire.CreateContainerRequest
		want       sandboxFields
		wantReport wire.SandboxReport
	}{
		{
			name: "runsc host: nproc inside gVisor, PIDs cgroup as the host's safety net",
			host: runsc, req: base(nil),
			want: sandboxFields{Runtime: "runsc", CapDrop: []string{"ALL"}, CapAdd: MinimalCaps,
				SecurityOpt: []string{"no-new-privileges"}, PidsLimit: int64Ptr(1024*16 + 512),
				Ulimits: []*container.Ulimit{nofile(65536), nproc(1024)}, NetworkMode: NetworkOpen},
			wantReport: wire.SandboxReport{Runtime: "runsc", Network: NetworkOpen, Egress: EgressOpen},
		},
		{
			name: "runc host: PIDs cgroup is the limit, nproc left alone, fallback reported",
			host: runc, req: base(nil),
			want: sandboxFields{CapDrop: []string{"ALL"}, CapAdd: MinimalCaps,
				SecurityOpt: []string{"no-new-privileges"}, PidsLimit: int64Ptr(1024),
				Ulimits: []*container.Ulimit{nofile(65536)}, NetworkMode: NetworkOpen},
			wantReport: wire.SandboxReport{Runtime: "runc", Network: NetworkOpen, Egress: EgressOpen,
				Degraded: []string{"runtime runc instead of runsc: dockerd has no runsc runtime"}},
		},
		{
			name: "zero limits take the defaults; open files capped at the host's hard limit",
			host: lowFiles, req: base(func(r *wire.CreateContainerRequest) { r.Limits = wire.ProcessLimits{} }),
			want: sandboxFields{CapDrop: []string{"ALL"}, CapAdd: MinimalCaps,
				SecurityOpt: []string{"no-new-privileges"}, PidsLimit: int64Ptr(wire.MinProcessLimits.Processes),
				Ulimits: []*container.Ulimit{nofile(20000)}, NetworkMode: NetworkOpen},
			wantReport: wire.SandboxReport{Runtime: "runc", Network: NetworkOpen, Egress: EgressOpen,
				Degraded: []string{"runtime runc instead of runsc: dockerd has no runsc runtime",
					"open_files 65536 capped at the host's hard limit 20000"}},
		},
		{
			name: "egress none: the internal network",
			host: closed, req: base(nil),
			want: sandboxFields{Runtime: "runsc", CapDrop: []string{"ALL"}, CapAdd: MinimalCaps,
				SecurityOpt: []string{"no-new-privileges"}, PidsLimit: int64Ptr(1024*16 + 512),
				Ulimits: []*container.Ulimit{nofile(65536), nproc(1024)}, NetworkMode: NetworkInternal},
			wantReport: wire.SandboxReport{Runtime: "runsc", Network: NetworkInternal, Egress: EgressNone},
		},
		{
			name: "every exception, each reported",
			host: runsc,
			req: base(func(r *wire.CreateContainerRequest) {
				r.Runtime, r.NetworkMode, r.CapAdd = "runc", "bridge", []string{"cap_net_raw", "CHOWN"}
				r.Limits.Processes = -1
				r.SandboxExceptions = wire.SandboxExceptions
			}),
			want: sandboxFields{Runtime: "", CapDrop: []string{"ALL"}, CapAdd: append(append([]string{}, MinimalCaps...), "NET_RAW"),
				Ulimits: []*container.Ulimit{nofile(65536)}, NetworkMode: "bridge"},
			wantReport: wire.SandboxReport{Runtime: "runc", Network: "bridge", Egress: EgressOpen,
				Exceptions: []string{wire.ExceptRunc, wire.ExceptCapabilities, wire.ExceptNewPrivileges,
					wire.ExceptNoProcessLimit, wire.ExceptSharedNetwork}},
		},
		{
			name: "a GPU workspace runs under runc, reported",
			host: runsc, req: base(func(r *wire.CreateContainerRequest) {
				r.GPU = &wire.GPURequest{Count: 1, Capabilities: []string{"gpu"}}
			}),
			want: sandboxFields{CapDrop: []string{"ALL"}, CapAdd: MinimalCaps,
				SecurityOpt: []string{"no-new-privileges"}, PidsLimit: int64Ptr(1024),
				Ulimits: []*container.Ulimit{nofile(65536)}, NetworkMode: NetworkOpen},
			wantReport: wire.SandboxReport{Runtime: "runc", Network: NetworkOpen, Egress: EgressOpen,
				Degraded: []string{"runtime runc: GPU workspaces cannot run under runsc"}},
		},
		{
			name: "network none stays none",
			host: runsc, req: base(func(r *wire.CreateContainerRequest) { r.NetworkMode = "none" }),
			want: sandboxFields{Runtime: "runsc", CapDrop: []string{"ALL"}, CapAdd: MinimalCaps,
				SecurityOpt: []string{"no-new-privileges"}, PidsLimit: int64Ptr(1024*16 + 512),
				Ulimits: []*container.Ulimit{nofile(65536), nproc(1024)}, NetworkMode: "none"},
			wantReport: wire.SandboxReport{Runtime: "runsc", Network: "none", Egress: EgressNone},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newOfflineClient(t)
			c.sandbox = tt.host
			_, hostCfg, rep, err := c.buildCreate(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, sandboxOf(hostCfg)); diff != "" {
				t.Errorf("host config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantReport, *rep); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if hostCfg.Privileged {
				t.Error("privileged")
			}
		})
	}
}

// A request that weakens the sandbox without its exception is refused,
// naming the exception it lacks.
func TestSandboxRefusals(t *testing.T) {
	runsc := HostSandbox{Runsc: true, Egress: EgressOpen}
	tests := []struct {
		name     string
		mutate   func(*wire.CreateContainerRequest)
		wantText string
	}{
		{"extra capability", func(r *wire.CreateContainerRequest) { r.CapAdd = []string{"SYS_ADMIN"} }, `"capabilities" exception`},
		{"extra capability with CAP_ prefix", func(r *wire.CreateContainerRequest) { r.CapAdd = []string{"cap_net_raw"} }, "NET_RAW"},
		{"no process limit", func(r *wire.CreateContainerRequest) { r.Limits.Processes = -1 }, `"no_process_limit"`},
		{"negative process limit", func(r *wire.CreateContainerRequest) { r.Limits.Processes = -2 }, "limits.processes -2"},
		{"negative open files", func(r *wire.CreateContainerRequest) { r.Limits.OpenFiles = -1 }, "open_files"},
		{"runc where runsc works", func(r *wire.CreateContainerRequest) { r.Runtime = "runc" }, `"runc" exception`},
		{"shared bridge", func(r *wire.CreateContainerRequest) { r.NetworkMode = "bridge" }, `"shared_network"`},
		{"another network", func(r *wire.CreateContainerRequest) { r.NetworkMode = "other-tenant" }, "berth's workspace network"},
		{"unknown exception", func(r *wire.CreateContainerRequest) { r.SandboxExceptions = []string{"everything"} }, "unknown sandbox exception"},
		{"an exception does not cover another", func(r *wire.CreateContainerRequest) {
			r.CapAdd, r.SandboxExceptions = []string{"SYS_ADMIN"}, []string{wire.ExceptRunc}
		}, `"capabilities" exception`},
		{"negative quota", func(r *wire.CreateContainerRequest) {
			r.Mounts = []wire.Mount{{Source: "w/home", Target: "/home/dev", QuotaGB: -1}}
		}, "quota_gb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newOfflineClient(t)
			c.sandbox = runsc
			req := wire.CreateContainerRequest{Name: "ws", Image: "img"}
			tt.mutate(&req)
			_, _, _, err := c.buildCreate(req)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got %v, want ErrBadRequest mentioning %q", err, tt.wantText)
			}
		})
	}
	t.Run("runc is fine where runsc is not available", func(t *testing.T) {
		c := newOfflineClient(t)
		c.sandbox = HostSandbox{Egress: EgressOpen}
		if _, _, _, err := c.buildCreate(wire.CreateContainerRequest{Name: "ws", Image: "img", Runtime: "runc"}); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
}

func TestHasOpts(t *testing.T) {
	tests := []struct {
		opts string
		want bool
	}{
		{"rw,nosuid,nodev,noatime", true},
		{"rw,nodev", false},
		{"rw,relatime", false},
	}
	for _, tt := range tests {
		if got := hasOpts(tt.opts, "nosuid", "nodev"); got != tt.want {
			t.Errorf("hasOpts(%q) = %v, want %v", tt.opts, got, tt.want)
		}
	}
	if got := unescapeMount(`/var/lib/a\040b`); got != "/var/lib/a b" {
		t.Errorf("unescapeMount: got %q", got)
	}
}
