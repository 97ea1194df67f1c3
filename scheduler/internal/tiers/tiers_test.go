package tiers

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
	"berth/shared/wire"
)

func TestSpecResources(t *testing.T) {
	c := Builtin()
	tests := []struct {
		tier string
		want fleet.Resources
	}{
		{"starter", fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}},
		{"pro", fleet.Resources{CPU: 4, MemoryMB: 8192, DiskGB: 50, BandwidthMbps: 250}},
		{"gpu_starter", fleet.Resources{CPU: 8, MemoryMB: 65536, DiskGB: 100, BandwidthMbps: 500, GPUCount: 1}},
		{"no-such-tier", fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, c.Resolve(tt.tier).Resources()); diff != "" {
			t.Errorf("Resolve(%q).Resources() (-want +got):\n%s", tt.tier, diff)
		}
	}
	// A spec without a bandwidth reserves the contract's 100 Mbps; one with a
	// smaller bandwidth keeps it ("spec value or 100").
	if got := (Spec{VCPU: 1}).Resources().BandwidthMbps; got != DefaultBandwidthMbps {
		t.Errorf("no bandwidth: got %d, want %d", got, DefaultBandwidthMbps)
	}
	if got := (Spec{BandwidthMbps: 50}).Resources().BandwidthMbps; got != 50 {
		t.Errorf("50 Mbps: got %d, want 50", got)
	}
}

func TestNeedsGPU(t *testing.T) {
	for _, tt := range []struct {
		spec Spec
		want bool
	}{
		{Spec{IsGPU: true}, true},
		{Spec{GPUType: "A100", GPUCount: 1}, true},
		{Spec{GPUType: "A100"}, false},
		{Spec{}, false},
	} {
		if got := tt.spec.NeedsGPU(); got != tt.want {
			t.Errorf("%+v.NeedsGPU() = %v, want %v", tt.spec, got, tt.want)
		}
	}
}

func TestProcessLimits(t *testing.T) {
	c := Builtin()
	tests := []struct {
		tier string
		want wire.ProcessLimits
	}{
		{"starter", wire.ProcessLimits{Processes: 1024, OpenFiles: 65536}},
		{"pro", wire.ProcessLimits{Processes: 2048, OpenFiles: 131072}},
		{"enterprise", wire.ProcessLimits{Processes: 8192, OpenFiles: 524288}},
		{"gpu_pro", wire.ProcessLimits{Processes: 12288, OpenFiles: 786432}},
		{"no-such-tier", wire.ProcessLimits{Processes: 1024, OpenFiles: 65536}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, c.Resolve(tt.tier).ProcessLimits()); diff != "" {
			t.Errorf("Resolve(%q).ProcessLimits() (-want +got):\n%s", tt.tier, diff)
		}
	}
	if got := (Spec{VCPU: 0.5}).ProcessLimits(); got != wire.MinProcessLimits {
		t.Errorf("half a vCPU: got %+v, want the floors", got)
	}
	if got := (Spec{VCPU: 256}).ProcessLimits(); got != (wire.ProcessLimits{Processes: MaxProcesses, OpenFiles: MaxOpenFiles}) {
		t.Errorf("256 vCPUs: got %+v, want the ceilings", got)
	}
}
