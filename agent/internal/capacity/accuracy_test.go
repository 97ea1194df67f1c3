package capacity

import (
	"bufio"
	"context"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/agent/internal/docker"
)

// The agent's Docker client is the DockerFacts used in production.
var _ DockerFacts = (*docker.Client)(nil)

// TestSampleAccuracy compares a sample with what the kernel says directly.
func TestSampleAccuracy(t *testing.T) {
	root := t.TempDir()
	got, err := NewSampler(Options{DataRoot: root}, &fakeDocker{}, nil).Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	if got.CPUCores != runtime.NumCPU() {
		t.Errorf("cpu cores: got %d, want %d (runtime.NumCPU)", got.CPUCores, runtime.NumCPU())
	}

	memTotalMB := memTotalFromProc(t)
	if !within1Percent(float64(got.MemoryTotalMB), memTotalMB) {
		t.Errorf("memory total: got %d MB, want %.0f MB ±1%% (/proc/meminfo)", got.MemoryTotalMB, memTotalMB)
	}
	if got.MemoryAvailableMB <= 0 || got.MemoryAvailableMB > got.MemoryTotalMB {
		t.Errorf("memory available: got %d MB, want 0 < x ≤ %d", got.MemoryAvailableMB, got.MemoryTotalMB)
	}

	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	diskTotalGB := float64(st.Blocks) * float64(st.Bsize) / (1 << 30)
	if !within1Percent(got.DiskTotalGB, diskTotalGB) {
		t.Errorf("disk total: got %.3f GB, want %.3f GB ±1%% (statfs)", got.DiskTotalGB, diskTotalGB)
	}
	if got.DiskFreeGB < 0 || got.DiskFreeGB > got.DiskTotalGB || got.DiskPath != root {
		t.Errorf("disk free: got %.3f GB of %.3f at %q", got.DiskFreeGB, got.DiskTotalGB, got.DiskPath)
	}

	if got.Architecture != runtime.GOARCH {
		t.Errorf("architecture: got %q, want %q", got.Architecture, runtime.GOARCH)
	}
	if got.Load1 < 0 || got.Load5 < 0 {
		t.Errorf("load: got %v %v, want ≥ 0", got.Load1, got.Load5)
	}
}

// TestSampleWithDocker samples with the agent's real Docker client; it
// skips when Docker is unreachable.
func TestSampleWithDocker(t *testing.T) {
	const sock = "/var/run/docker.sock"
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		t.Skipf("docker is unreachable at %s (%v)", sock, err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := docker.New(ctx, docker.Options{Host: "unix://" + sock, DataDir: t.TempDir(), ServerID: "s"}, nil)
	if err != nil {
		t.Skipf("docker is unreachable: %v", err)
	}
	defer dc.Close()
	if _, _, images, err := dc.Counts(ctx); err == nil && images == 0 {
		t.Skip("the local daemon holds no image (`make test` builds them first)")
	}
	info, err := dc.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root := info.DataRoot
	if _, err := os.Stat(root); err != nil {
		root = t.TempDir() // the daemon's file system is not visible here
	}
	got, err := NewSampler(Options{ServerID: "s", DataRoot: root}, dc, nil).Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Images < 1 || got.ContainersRunning > got.Containers || got.Workspaces > got.Containers {
		t.Errorf("got images %d containers %d running %d workspaces %d", got.Images, got.Containers, got.ContainersRunning, got.Workspaces)
	}
	if got.Workspaces != len(list) {
		t.Errorf("workspaces: got %d, want %d (berth containers listed)", got.Workspaces, len(list))
	}
}

func memTotalFromProc(t *testing.T) float64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Skipf("no /proc/meminfo: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb / 1024
		}
	}
	t.Fatal("MemTotal not in /proc/meminfo")
	return 0
}

func within1Percent(got, want float64) bool {
	return math.Abs(got-want) <= want/100
}
