package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
)

// BenchmarkReplicatedReserve: durable reservations (ReserveAndInsert, what
// a create writes first) from 100 concurrent writers, on one registry with
// no raft and on the leader of three schedulers over mutual TLS (each with
// its bbolt log and its SQLite file, all on this machine's disk and
// cores), in the same run. The writers spread over 100 servers, so that
// no server's reservation sum grows long. creates/s is the figure; the ratio is in
// scripts/bench.sh.
func BenchmarkReplicatedReserve(b *testing.B) {
	run := func(b *testing.B, db *registry.DB) {
		for i := range 100 {
			if _, err := db.CreateServer(context.Background(), registry.Server{ID: fmt.Sprintf("s%02d", i)}); err != nil {
				b.Fatal(err)
			}
		}
		var next atomic.Int64
		b.SetParallelism(max(1, 100/runtime.GOMAXPROCS(0))) // 100 writers
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := next.Add(1)
				if err := reserveOn(fmt.Sprintf("s%02d", n%100), fmt.Sprintf("w%08d", n))(db); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
	}
	b.Run("local", func(b *testing.B) {
		db, err := registry.Open(context.Background(), filepath.Join(b.TempDir(), "berth.db"), hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db)
	})
	b.Run("raft-3", func(b *testing.B) {
		_, nodes := newCluster(b, 3, DefaultHeartbeatTimeout, DefaultLeaderLeaseTimeout)
		run(b, leaderOf(b, nodes...).db)
	})
}

// TestBenchElection (BERTH_BENCH=1, in make bench): three schedulers over
// mutual TLS with the default timings; the leader is killed ten times
// (its node and registry closed at once) and the time until a new leader
// takes a write is measured; the killed one restarts from its disk each
// time.
func TestBenchElection(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("a benchmark: BERTH_BENCH=1")
	}
	pki, nodes := newCluster(t, 3, DefaultHeartbeatTimeout, DefaultLeaderLeaseTimeout)
	var took []time.Duration
	for k := range 10 {
		old := leaderOf(t, nodes...)
		killed := time.Now()
		old.stop()
		write(t, nodes, reserve(fmt.Sprintf("k%02d", k)))
		took = append(took, time.Since(killed))
		back := startNodeTimed(t, pki, old.id, old.dir, old.addr, DefaultHeartbeatTimeout, DefaultLeaderLeaseTimeout)
		for i, n := range nodes {
			if n == old {
				nodes[i] = back
			}
		}
		waitWorkspaces(t, back, k+1)
	}
	slices.Sort(took)
	t.Logf("leader killed -> a write taken by the new leader, 10 kills: p50 %s, p99 (max) %s, min %s",
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), took[0].Round(time.Millisecond))
}

// TestBenchSnapshot (BERTH_BENCH=1, in make bench): three schedulers with
// 100,000 workspaces on 100 servers written through raft; the leader's
// snapshot of the registry (time, size), then a fourth scheduler that joins
// and is sent it (time until its registry holds every workspace).
func TestBenchSnapshot(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("a benchmark: BERTH_BENCH=1")
	}
	const workspaces = 100_000
	pki, nodes := newCluster(t, 3, DefaultHeartbeatTimeout, DefaultLeaderLeaseTimeout)
	l := leaderOf(t, nodes...)
	for i := range 100 {
		if _, err := l.db.CreateServer(context.Background(), registry.Server{ID: fmt.Sprintf("s%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var next atomic.Int64
	errs := make(chan error, 100)
	for range 100 {
		go func() {
			for {
				n := next.Add(1)
				if n > workspaces {
					errs <- nil
					return
				}
				if err := reserveOn(fmt.Sprintf("s%02d", n%100), fmt.Sprintf("w%08d", n))(l.db); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 100 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d workspaces written through raft in %s", workspaces, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := registry.CompactToSnapshot(l.node.r); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	snaps, err := l.node.snaps.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	n4 := startNodeTimed(t, pki, "sched-4", t.TempDir(), "127.0.0.1:0", DefaultHeartbeatTimeout, DefaultLeaderLeaseTimeout)
	start = time.Now()
	if err := l.node.AddVoter(n4.id, n4.addr); err != nil {
		t.Fatal(err)
	}
	total := func(db *registry.DB) int {
		sum := 0
		for i := range 100 {
			sum += db.Usage(fmt.Sprintf("s%02d", i)).Workspaces
		}
		return sum
	}
	for total(n4.db) < workspaces {
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("the new scheduler holds %d workspaces after 5 min", total(n4.db))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("FIGURE snapshot: %d workspaces: snapshot %s, %.1f MB; a new scheduler holds them all %s after it was added",
		workspaces, took.Round(time.Millisecond), float64(snaps[0].Size)/1e6, time.Since(start).Round(time.Millisecond))
}
