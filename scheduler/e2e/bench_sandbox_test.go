package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// The cost of gVisor: create→running and the exec round trip of a workspace
// container under runsc and under runc, on the same host in the same run,
// interleaved (scripts/bench.sh prints the ratios; no wall-clock asserts).
// create→running is the agent's create-and-start call plus the first exec
// that succeeds in it; the exec round trip is `true` through the agent.
func TestBenchSandboxRuntimes(t *testing.T) {
	needBench(t)
	host := hosts[0].id
	if !runscOK(t, host) {
		t.Skip("runsc is not available on " + host)
	}
	c := agents(t)[host]
	rounds := envInt("BERTH_BENCH_SANDBOX_ROUNDS", 5)
	execs := envInt("BERTH_BENCH_SANDBOX_EXECS", 20)
	create := map[string][]time.Duration{}
	execRT := map[string][]time.Duration{}
	for i := range rounds {
		for _, rt := range []string{"runsc", "runc"} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			dir := uniqueID("e2e-bench-sbx")
			req := wire.CreateContainerRequest{
				Name: "berth-" + dir, Image: "berth/workspace:dev", Start: true,
				Resources: wire.Resources{CPU: 1, MemoryMB: 512},
				Limits:    tiers.Builtin().Resolve("starter").ProcessLimits(),
				Mounts:    []wire.Mount{{Source: dir + "/home", Target: "/home/dev", Fresh: true, QuotaGB: 1}},
				Runtime:   rt,
			}
			if rt == "runc" {
				req.SandboxExceptions = []string{wire.ExceptRunc}
			}
			start := time.Now()
			ctr, err := c.Create(ctx, req)
			if err != nil {
				cancel()
				t.Fatalf("round %d %s: create: %v", i, rt, err)
			}
			if _, err := agentExec(ctx, c, ctr.ID, "true"); err != nil {
				t.Fatalf("round %d %s: first exec: %v", i, rt, err)
			}
			create[rt] = append(create[rt], time.Since(start))
			for range execs {
				s := time.Now()
				if res, err := agentExec(ctx, c, ctr.ID, "true"); err != nil || res.ExitCode != 0 {
					t.Fatalf("round %d %s: exec: %v %+v", i, rt, err, res)
				}
				execRT[rt] = append(execRT[rt], time.Since(s))
			}
			if err := c.Remove(ctx, ctr.ID, true); err != nil {
				t.Errorf("remove: %v", err)
			}
			if err := c.RemoveData(ctx, dir); err != nil {
				t.Errorf("remove data: %v", err)
			}
			cancel()
		}
	}
	for _, rt := range []string{"runsc", "runc"} {
		benchLine(fmt.Sprintf("sandbox/%s/create_to_running/p50", rt), len(create[rt]), float64(p50(create[rt]).Nanoseconds()), "ns/op")
		benchLine(fmt.Sprintf("sandbox/%s/exec/p50", rt), len(execRT[rt]), float64(p50(execRT[rt]).Nanoseconds()), "ns/op")
	}
}

func p50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
