package capacity

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"berth/shared/wire"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/shirou/gopsutil/v4/cpu"
)

// fakeDocker is a hand-written DockerFacts.
type fakeDocker struct {
	mu                          sync.Mutex
	containers, running, images int
	list                        []wire.Container
	countsErr, listErr          error
	failFirst                   int // calls to Counts that fail before it answers
	calls                       int
}

func (f *fakeDocker) Counts(context.Context) (int, int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.failFirst {
		return 0, 0, 0, errors.New("daemon restarting")
	}
	return f.containers, f.running, f.images, f.countsErr
}

func (f *fakeDocker) List(context.Context) ([]wire.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, f.listErr
}

func ctr(state string, cpu float64, memMB int64) wire.Container {
	return wire.Container{State: state, Resources: wire.Resources{CPU: cpu, MemoryMB: memMB}}
}

// hostFields are the measured ones, checked by TestSampleAccuracy.
var hostFields = cmpopts.IgnoreFields(wire.Capacity{}, "Architecture", "CPUCores", "CPUPercent", "Load1", "Load5",
	"MemoryTotalMB", "MemoryAvailableMB", "DiskTotalGB", "DiskFreeGB", "SampledAt")

func TestSampleDockerFacts(t *testing.T) {
	tests := []struct {
		name           string
		list           []wire.Container
		wantWorkspaces int
		wantCPU        float64
		wantMemMB      int64
	}{
		{name: "no berth containers"},
		{
			name: "running and created reserve, others do not",
			list: []wire.Container{
				ctr("running", 2, 4096), ctr("created", 0.5, 1024), ctr("exited", 4, 8192),
				ctr("dead", 1, 512), ctr("paused", 1, 512), ctr("running", 0.1, 256),
			},
			wantWorkspaces: 6, wantCPU: 2.6, wantMemMB: 5376,
		},
		{
			name:           "unlimited containers reserve nothing",
			list:           []wire.Container{ctr("running", 0, 0)},
			wantWorkspaces: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := &fakeDocker{containers: 9, running: 4, images: 3, list: tt.list}
			root := t.TempDir()
			s := NewSampler(Options{ServerID: "ws-1", DataRoot: root, GPUType: "a100", GPUCount: 2}, fd, nil)
			got, err := s.Sample(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := wire.Capacity{
				ServerID: "ws-1", DiskPath: root, GPUType: "a100", GPUCount: 2,
				Containers: 9, ContainersRunning: 4, Images: 3,
				Workspaces: tt.wantWorkspaces, ReservedCPU: tt.wantCPU, ReservedMemoryMB: tt.wantMemMB,
			}
			if diff := cmp.Diff(want, got, hostFields); diff != "" {
				t.Errorf("sample (-want +got):\n%s", diff)
			}
			if got.SampledAt.IsZero() || got.CPUCores < 1 || got.MemoryTotalMB < 1 || got.DiskTotalGB <= 0 {
				t.Errorf("host facts missing: %+v", got)
			}
		})
	}
}

func TestSampleErrors(t *testing.T) {
	tests := []struct {
		name     string
		docker   *fakeDocker
		dataRoot string
		want     error
	}{
		{"counts fail", &fakeDocker{countsErr: errors.New("boom")}, "", ErrDocker},
		{"list fails", &fakeDocker{listErr: errors.New("boom")}, "", ErrDocker},
		{"no data root", &fakeDocker{}, "-", ErrHost},
		{"data root missing", &fakeDocker{}, "/nonexistent/berth/data-root", ErrHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tt.dataRoot
			switch root {
			case "":
				root = t.TempDir()
			case "-":
				root = ""
			}
			got, err := NewSampler(Options{DataRoot: root}, tt.docker, nil).Sample(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if got.MemoryTotalMB < 1 {
				t.Errorf("host facts measured before the failure are missing: %+v", got)
			}
		})
	}
}

func TestSampleCPUPercent(t *testing.T) {
	s := NewSampler(Options{DataRoot: t.TempDir()}, &fakeDocker{}, nil)
	first, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.CPUPercent != 0 {
		t.Errorf("first sample: got %v%%, want 0", first.CPUPercent)
	}
	second, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if second.CPUPercent < 0 || second.CPUPercent > 100 {
		t.Errorf("second sample: got %v%%, want 0..100", second.CPUPercent)
	}
}

func TestBusyPercent(t *testing.T) {
	base := cpu.TimesStat{User: 100, System: 50, Idle: 800, Iowait: 50}
	tests := []struct {
		name string
		next cpu.TimesStat
		want float64
	}{
		{"half busy", cpu.TimesStat{User: 130, System: 70, Idle: 840, Iowait: 60}, 50},
		{"idle", cpu.TimesStat{User: 100, System: 50, Idle: 900, Iowait: 50}, 0},
		{"fully busy", cpu.TimesStat{User: 200, System: 50, Idle: 800, Iowait: 50}, 100},
		{"guest time is part of user time", cpu.TimesStat{User: 130, System: 70, Idle: 840, Iowait: 60, Guest: 30}, 50},
		{"clock went backwards", cpu.TimesStat{User: 90, System: 50, Idle: 700, Iowait: 50}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := busyPercent(base, tt.next); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNormaliseArch(t *testing.T) {
	tests := map[string]string{
		"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
		"i686": "386", "riscv64": "riscv64", "s390x": "s390x", "mips": "mips",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := normaliseArch(in); got != want {
				t.Errorf("normaliseArch(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Run("calls onChange for each successful sample", func(t *testing.T) {
		fd := &fakeDocker{images: 1, failFirst: 2}
		s := NewSampler(Options{DataRoot: t.TempDir()}, fd, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan wire.Capacity, 16)
		var failed []error // Run's goroutine only, read after it returned
		done := make(chan error, 1)
		go func() {
			done <- s.Run(ctx, 5*time.Millisecond, func(c wire.Capacity) {
				select {
				case got <- c:
				default:
				}
			}, func(err error) { failed = append(failed, err) })
		}()
		var samples []wire.Capacity
		deadline := time.After(10 * time.Second)
		for len(samples) < 3 {
			select {
			case c := <-got:
				samples = append(samples, c)
			case <-deadline:
				t.Fatalf("got %d samples in 10s, want 3", len(samples))
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil on cancel", err)
		}
		if len(failed) != 2 || !errors.Is(failed[0], ErrDocker) || !errors.Is(failed[1], ErrDocker) {
			t.Errorf("onFail got %v, want the 2 failed samples, each wrapping ErrDocker", failed)
		}
		for i, c := range samples {
			if c.Images != 1 {
				t.Errorf("sample %d: images got %d, want 1 (failed samples must be skipped)", i, c.Images)
			}
			if i > 0 && !c.SampledAt.After(samples[i-1].SampledAt) {
				t.Errorf("sample %d: sampled at %v, not after %v", i, c.SampledAt, samples[i-1].SampledAt)
			}
		}
		fd.mu.Lock()
		calls := fd.calls
		fd.mu.Unlock()
		if calls < 5 {
			t.Errorf("docker counts called %d times, want ≥ 5 (2 failures + 3 samples)", calls)
		}
	})
	t.Run("refuses a non-positive interval", func(t *testing.T) {
		s := NewSampler(Options{}, &fakeDocker{}, nil)
		if err := s.Run(context.Background(), 0, func(wire.Capacity) {}, nil); err == nil {
			t.Error("got nil, want an error")
		}
	})
}
