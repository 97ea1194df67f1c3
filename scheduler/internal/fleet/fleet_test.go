package fleet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFits(t *testing.T) {
	avail := Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100, GPUCount: 1}
	tests := []struct {
		name      string
		avail     Resources
		req       Resources
		wantOK    bool
		wantShort Shortfall
		wantWhy   string
	}{
		{name: "exactly full fits", avail: avail, req: avail, wantOK: true},
		{name: "nothing asked fits anywhere", avail: Resources{CPU: -3, MemoryMB: -1}, req: Resources{}, wantOK: true},
		{name: "float sums of cores fit", avail: Resources{CPU: 0.1 + 0.2}, req: Resources{CPU: 0.3}, wantOK: true},
		{name: "cpu first", avail: avail, req: Resources{CPU: 2.5, MemoryMB: 9999},
			wantShort: Shortfall{CPU, 2.5, 2}, wantWhy: "insufficient cpu: need 2.5 cores, have 2 cores"},
		{name: "memory", avail: avail, req: Resources{MemoryMB: 4097},
			wantShort: Shortfall{Memory, 4097, 4096}, wantWhy: "insufficient memory: need 4097MB, have 4096MB"},
		{name: "disk", avail: avail, req: Resources{DiskGB: 21},
			wantShort: Shortfall{Disk, 21, 20}, wantWhy: "insufficient disk: need 21GB, have 20GB"},
		{name: "bandwidth", avail: avail, req: Resources{BandwidthMbps: 101},
			wantShort: Shortfall{Bandwidth, 101, 100}, wantWhy: "insufficient bandwidth: need 101Mbps, have 100Mbps"},
		{name: "gpus", avail: avail, req: Resources{GPUCount: 2},
			wantShort: Shortfall{GPU, 2, 1}, wantWhy: "insufficient gpus: need 2, have 1"},
		{name: "unlimited takes anything", avail: Unlimited, req: Resources{CPU: 1e6, MemoryMB: 1 << 50, GPUCount: 64}, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			short, ok := Fits(tt.avail, tt.req)
			if ok != tt.wantOK {
				t.Fatalf("Fits() ok = %v, want %v (shortfall %+v)", ok, tt.wantOK, short)
			}
			if ok {
				return
			}
			if diff := cmp.Diff(tt.wantShort, short); diff != "" {
				t.Errorf("Fits() shortfall (-want +got):\n%s", diff)
			}
			if got := short.Reason(); got != tt.wantWhy {
				t.Errorf("Reason() = %q, want %q", got, tt.wantWhy)
			}
		})
	}
}

func TestGrowth(t *testing.T) {
	from := Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}
	to := Resources{CPU: 4, MemoryMB: 2048, DiskGB: 50, BandwidthMbps: 1000, GPUCount: 1}
	want := Resources{CPU: 2, DiskGB: 30, GPUCount: 1} // memory shrinks, bandwidth is never checked
	if diff := cmp.Diff(want, Growth(from, to)); diff != "" {
		t.Errorf("Growth() (-want +got):\n%s", diff)
	}
}

func TestSchedulable(t *testing.T) {
	tests := []struct {
		health      Health
		state       State
		usable, sch bool
	}{
		{HealthHealthy, StateActive, true, true},
		{HealthDegraded, StateActive, true, true},
		{HealthHealthy, StateDraining, true, false},
		{HealthDegraded, StateCordoned, true, false},
		{HealthUnhealthy, StateActive, false, false},
		{HealthUnreachable, StateActive, false, false},
		{HealthUnknown, StateActive, false, false},
		{"", StateActive, false, false},
	}
	for _, tt := range tests {
		if got := Usable(tt.health); got != tt.usable {
			t.Errorf("Usable(%q) = %v, want %v", tt.health, got, tt.usable)
		}
		if got := Schedulable(tt.health, tt.state); got != tt.sch {
			t.Errorf("Schedulable(%q, %q) = %v, want %v", tt.health, tt.state, got, tt.sch)
		}
	}
}

func TestRoomForWorkspace(t *testing.T) {
	for _, tt := range []struct {
		max, count int
		want       bool
	}{{0, 1000, true}, {10, 9, true}, {10, 10, false}, {1, 0, true}, {1, 1, false}} {
		if got := RoomForWorkspace(tt.max, tt.count); got != tt.want {
			t.Errorf("RoomForWorkspace(%d, %d) = %v, want %v", tt.max, tt.count, got, tt.want)
		}
	}
}

func TestVocabularyValid(t *testing.T) {
	for _, s := range []State{StateActive, StateDraining, StateCordoned} {
		if !s.Valid() {
			t.Errorf("%q not valid", s)
		}
	}
	for _, h := range []Health{HealthHealthy, HealthDegraded, HealthUnhealthy, HealthUnreachable, HealthUnknown} {
		if !h.Valid() {
			t.Errorf("%q not valid", h)
		}
	}
	for _, s := range []Status{StatusCreating, StatusRunning, StatusStopping, StatusStopped, StatusError, StatusPendingDeletion} {
		if !s.Valid() {
			t.Errorf("%q not valid", s)
		}
	}
	if State("gone").Valid() || Health("fine").Valid() || Status("deleted").Valid() {
		t.Error("an unknown value was valid")
	}
}
