package capacity

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"berth/shared/wire"

	"github.com/hashicorp/go-hclog"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
)

// DockerFacts is what the sampler reads from the local Docker daemon
// (agent/internal/docker.Client satisfies it).
type DockerFacts interface {
	// Counts returns the daemon's container (all and running) and image
	// counts, berth's or not.
	Counts(ctx context.Context) (containers, running, images int, err error)
	// List returns berth's containers, running or not, with their limits.
	List(ctx context.Context) ([]wire.Container, error)
}

// Options configure a Sampler.
type Options struct {
	ServerID string
	DataRoot string // Docker's data root; disk figures are of its file system
	GPUType  string
	GPUCount int
}

// Sampler measures the host. It is safe for concurrent use: Run and an API
// handler may call Sample at the same time. Each Sample's CPU percentage
// covers the time since the previous Sample of the same Sampler.
type Sampler struct {
	opts   Options
	docker DockerFacts
	log    hclog.Logger

	mu       sync.Mutex
	prevCPU  cpu.TimesStat // guarded by mu
	havePrev bool          // guarded by mu
}

// NewSampler returns a Sampler; it measures nothing until Sample or Run.
// logger is used as given (the caller names it); nil discards.
func NewSampler(opts Options, docker DockerFacts, logger hclog.Logger) *Sampler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Sampler{opts: opts, docker: docker, log: logger}
}

// Sample measures the host and Docker once. It does not block for a CPU
// interval: CPUPercent is the whole-host use since the previous Sample (0 on
// the first). On error the returned Capacity holds what was measured before
// the failure; the error wraps ErrHost or ErrDocker.
//
// Reserved CPU and memory are the sums of the limits of berth's containers
// that are running or created (a created one is about to start); stopped
// ones reserve nothing. Workspaces counts all of berth's containers.
func (s *Sampler) Sample(ctx context.Context) (wire.Capacity, error) {
	c := wire.Capacity{
		ServerID:     s.opts.ServerID,
		DiskPath:     s.opts.DataRoot,
		GPUType:      s.opts.GPUType,
		GPUCount:     s.opts.GPUCount,
		Architecture: runtime.GOARCH,
		SampledAt:    time.Now().UTC(),
	}
	if arch, err := host.KernelArch(); err == nil && arch != "" {
		c.Architecture = normaliseArch(arch)
	}

	cores, err := cpu.CountsWithContext(ctx, true)
	if err != nil {
		return c, fmt.Errorf("%w: cpu count: %w", ErrHost, err)
	}
	// /proc/cpuinfo lists every CPU of the machine; a process confined to a
	// cpuset (e.g. a DinD host container) can use only its affinity.
	c.CPUCores = min(cores, runtime.NumCPU())

	times, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return c, fmt.Errorf("%w: cpu times: %w", ErrHost, err)
	}
	if len(times) == 0 {
		return c, fmt.Errorf("%w: cpu times: none reported", ErrHost)
	}
	c.CPUPercent = s.cpuPercentSince(times[0])

	avg, err := load.AvgWithContext(ctx)
	if err != nil {
		return c, fmt.Errorf("%w: load: %w", ErrHost, err)
	}
	c.Load1, c.Load5 = avg.Load1, avg.Load5

	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return c, fmt.Errorf("%w: memory: %w", ErrHost, err)
	}
	c.MemoryTotalMB = int64(vm.Total >> 20)
	c.MemoryAvailableMB = int64(vm.Available >> 20)

	if s.opts.DataRoot == "" {
		return c, fmt.Errorf("%w: disk: no data root configured", ErrHost)
	}
	du, err := disk.UsageWithContext(ctx, s.opts.DataRoot)
	if err != nil {
		return c, fmt.Errorf("%w: disk of %s: %w", ErrHost, s.opts.DataRoot, err)
	}
	c.DiskTotalGB = float64(du.Total) / (1 << 30)
	c.DiskFreeGB = float64(du.Free) / (1 << 30) // available to unprivileged users (f_bavail)

	c.Containers, c.ContainersRunning, c.Images, err = s.docker.Counts(ctx)
	if err != nil {
		return c, fmt.Errorf("%w: counts: %w", ErrDocker, err)
	}
	ctrs, err := s.docker.List(ctx)
	if err != nil {
		return c, fmt.Errorf("%w: berth containers: %w", ErrDocker, err)
	}
	c.Workspaces = len(ctrs)
	c.ReservedCPU, c.ReservedMemoryMB = Reserved(ctrs)
	return c, nil
}

// Reserved sums the limits of the containers that hold their reservation:
// running or created ones (a created one is about to start). CPU is rounded
// to thousandths of a core. agent/agenttest answers with it too.
func Reserved(ctrs []wire.Container) (cpu float64, memoryMB int64) {
	for _, ctr := range ctrs {
		switch ctr.State {
		case "running", "created":
			cpu += ctr.Resources.CPU
			memoryMB += ctr.Resources.MemoryMB
		}
	}
	return math.Round(cpu*1000) / 1000, memoryMB
}

// cpuPercentSince swaps in the new CPU times and returns the busy share
// since the previous ones. gopsutil's non-blocking cpu.Percent(0, …) keeps a
// single process-wide "previous call", which every caller would share; the
// Sampler keeps its own, with gopsutil's formula.
func (s *Sampler) cpuPercentSince(now cpu.TimesStat) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.prevCPU, s.havePrev
	s.prevCPU, s.havePrev = now, true
	if !had {
		return 0
	}
	return busyPercent(prev, now)
}

// busyPercent is the share of non-idle time between two readings of the
// aggregate CPU times, 0..100 (guest time is already counted in user time
// on Linux, so it is taken out of the total, as gopsutil does).
func busyPercent(t1, t2 cpu.TimesStat) float64 {
	all1, busy1 := allBusy(t1)
	all2, busy2 := allBusy(t2)
	if busy2 <= busy1 || all2 <= all1 {
		return 0
	}
	return math.Min(100, (busy2-busy1)/(all2-all1)*100)
}

func allBusy(t cpu.TimesStat) (all, busy float64) {
	all = t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	return all, all - t.Idle - t.Iowait
}

// normaliseArch maps a kernel machine name to GOARCH style.
func normaliseArch(kernel string) string {
	switch kernel {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64", "aarch64_be":
		return "arm64"
	case "i386", "i486", "i586", "i686":
		return "386"
	case "armv6l", "armv7l", "armv8l", "arm":
		return "arm"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	case "riscv64":
		return "riscv64"
	default:
		return kernel
	}
}

// Run samples every interval, starting at once, and calls onChange with each
// successful sample (the caller decides what counts as a change). A failed
// sample is logged, skipped and given to onFail (if not nil; its error wraps
// ErrHost or ErrDocker). Run returns nil when ctx ends; onChange and onFail
// are called from Run's goroutine only, never after Run returns.
func (s *Sampler) Run(ctx context.Context, interval time.Duration, onChange func(wire.Capacity), onFail func(error)) error {
	if interval <= 0 {
		return fmt.Errorf("capacity: sample interval %v must be positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c, err := s.Sample(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Warn("capacity sample failed", "error", err)
			if onFail != nil {
				onFail(err)
			}
		default:
			onChange(c)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
