package e2e

// Measurement harnesses for the README's failure-detection figures. They
// are not timed tests: they measure and print, and fail only if a fault goes
// undetected. Run them with scripts/fault-figures.sh (BERTH_HARNESS=1).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

func needHarness(t *testing.T) {
	t.Helper()
	needCluster(t)
	if os.Getenv("BERTH_HARNESS") != "1" {
		t.Skip("measurement harness: run scripts/fault-figures.sh")
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// Kill a whole host BERTH_KILLS times (default 20) and measure how long the
// scheduler takes to take it out of placement.
func TestHarnessDetection(t *testing.T) {
	needHarness(t)
	victim := "ws-local-2"
	restoreHost(t, victim)
	var took []time.Duration
	for i := range envInt("BERTH_KILLS", 20) {
		waitHealth(t, victim, 90*time.Second, "healthy before the kill", placeable)
		id := hostContainer(t, victim)
		docker(t, "kill", id)
		d := waitHealth(t, victim, 30*time.Second, "out of placement", func(h string) bool { return !placeable(h) })
		took = append(took, d)
		t.Logf("kill %2d: detected after %s", i+1, d.Round(time.Millisecond))
		docker(t, "start", id)
	}
	slices.Sort(took)
	p := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	fmt.Printf("DETECTION kills=%d p50=%s p99=%s max=%s\n", len(took), p(0.50).Round(time.Millisecond), p(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// Load every core for BERTH_LOAD_MINUTES (default 10) and count health
// transitions of healthy hosts out of placement: false positives.
func TestHarnessFalsePositives(t *testing.T) {
	needHarness(t)
	d := time.Duration(envInt("BERTH_LOAD_MINUTES", 10)) * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for range runtime.NumCPU() {
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
	}
	samples, bad := 0, map[string]int{}
	last := map[string]string{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Printf("FALSE_POSITIVES minutes=%g cores_loaded=%d samples=%d transitions_out_of_placement=%v\n", d.Minutes(), runtime.NumCPU(), samples, bad)
			for host, n := range bad {
				if n > 0 {
					t.Errorf("%s left placement %d times while healthy but loaded", host, n)
				}
			}
			return
		case <-tick.C:
		}
		samples++
		for host, h := range serverHealth(t) {
			if placeable(last[host]) && !placeable(h) && h != "" {
				bad[host]++
				t.Logf("%s: %s -> %s", host, last[host], h)
			}
			if h != "" {
				last[host] = h
			}
		}
	}
}
