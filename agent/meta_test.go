package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/internal/config"
	"berth/shared/gossip"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// What the agent gossips follows its event log's number and whether dockerd
// answers: the scheduler learns of new container events, and of a dockerd
// that stopped answering, from gossip alone. A number that moves before the
// publisher runs is published too.
func TestMetaPublisher(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	cfg := config.Default()
	cfg.ServerID = "ws-1"
	first := wire.Capacity{CPUCores: 4, MemoryTotalMB: 8192, MemoryAvailableMB: 4096, DiskTotalGB: 100, DiskFreeGB: 50}
	p := &metaPublisher{cfg: cfg, advertise: "127.0.0.1:7443", log: hclog.NewNullLogger(), capacity: first, eventSeq: 100,
		wake: make(chan struct{}, 1)}
	pool := func(name string, meta wire.NodeMeta) *gossip.Pool {
		pl, err := gossip.New(gossip.Config{Name: name, BindAddr: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), Key: key,
			Label: "berth-test", Fast: true}, meta, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pl.Shutdown() })
		return pl
	}
	p.pool = pool("ws-1", p.announced())
	observer := pool("scheduler", wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler"})
	if _, err := observer.Join([]string{p.pool.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	seen := func() wire.NodeMeta {
		for _, m := range observer.Members() {
			if m.Name == "ws-1" {
				return m.Meta
			}
		}
		return wire.NodeMeta{}
	}
	testutil.Eventually(t, 5*time.Second, "the agent in the observer's view", func() bool { return seen().EventSeq == 100 })

	p.setEventSeq(101) // before run: still published
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	steps := []struct {
		name string
		act  func()
		want func(wire.NodeMeta) bool
	}{
		{"an event logged before run", func() {}, func(m wire.NodeMeta) bool { return m.EventSeq == 101 }},
		{"another event", func() { p.setEventSeq(102) }, func(m wire.NodeMeta) bool { return m.EventSeq == 102 }},
		{"dockerd stops answering: the capacity stays", func() { p.setSample(wire.Capacity{}, true) },
			func(m wire.NodeMeta) bool { return m.DockerDown && m.MemTotalMB == 8192 && m.EventSeq == 102 }},
		{"dockerd back with a new sample", func() { first.MemoryAvailableMB = 1024; p.setSample(first, false) },
			func(m wire.NodeMeta) bool { return !m.DockerDown && m.MemFreeMB == 1024 }},
	}
	for _, st := range steps {
		st.act()
		testutil.Eventually(t, 5*time.Second, st.name, func() bool { return st.want(seen()) })
	}
}
