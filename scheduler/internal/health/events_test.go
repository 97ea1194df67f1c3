package health

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// recSink records what the watcher delivers, as "<server> opened" and
// "<server> <action> <container>".
type recSink struct{ got chan string }

func (r *recSink) ContainerEvent(_ context.Context, id string, ev wire.ContainerEvent) {
	r.got <- id + " " + ev.Action + " " + ev.ContainerID
}
func (r *recSink) StreamOpened(_ context.Context, id string) { r.got <- id + " opened" }

// expect waits for want, skipping other deliveries.
func (r *recSink) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-r.got:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("nothing delivered %q within 5s", want)
		}
	}
}

// quiet fails if anything is delivered within d.
func (r *recSink) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case got := <-r.got:
		t.Errorf("delivered %q, want nothing", got)
	case <-time.After(d):
	}
}

// Without gossip, the health probes carry each agent's latest event number:
// the watcher reconciles the server once (its first fetch is a reset),
// then fetches a container's events when they happen, re-reconciles after
// the agent's Docker event stream broke, and holds no request open at the
// agent in between (the event stream it replaced was one long request per
// agent).
func TestWatcherFetchesOnNewNumbers(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := startCounted(t, pki, "ws-1")
	reg := &memRegistry{servers: []registry.ServerAddr{serverAddr("ws-1", a.Addr())}, changes: make(chan string, 64)}
	go func() {
		for range reg.changes {
		}
	}()
	d := testDialer(t, pki)
	sink := &recSink{got: make(chan string, 256)}
	tr := New(reg, d, nil, agentAddr, fastOptions(), hclog.NewNullLogger())
	runTracker(t, tr, NewWatcher(d, sink, hclog.NewNullLogger()))

	sink.expect(t, "ws-1 opened")
	sink.quiet(t, 300*time.Millisecond) // probes repeat the same number: nothing to fetch
	ctx := context.Background()
	ctr, err := d.Client("ws-1", a.Addr()).Create(ctx, wire.CreateContainerRequest{Name: "w", Image: "img", Start: true, WorkspaceID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	sink.expect(t, "ws-1 start "+ctr.ID)
	if err := a.Exit(ctr.ID, 1); err != nil {
		t.Fatal(err)
	}
	sink.expect(t, "ws-1 die "+ctr.ID)

	a.SetDockerDown(true) // the agent's event stream from dockerd breaks: events may be missed
	sink.expect(t, "ws-1 opened")
	a.SetDockerDown(false)
	sink.expect(t, "ws-1 opened") // and again once it is back

	if open := a.open.Load(); open > 1 {
		t.Errorf("%d requests open at the agent, want at most a probe", open)
	}
	if longest := time.Duration(a.longest.Load()); longest > time.Second {
		t.Errorf("the longest request the agent served took %s, want none held open", longest)
	}
}

// With gossip, the number in the agent's metadata is enough: the watcher
// fetches when it moves, with no probe in between.
func TestWatcherFollowsGossip(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := startCounted(t, pki, "ws-1")
	d := testDialer(t, pki)
	client := d.Client("ws-1", a.Addr())
	ctx := context.Background()
	seq := func() uint64 {
		h, err := client.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h.EventSeq
	}
	pool := newFakePool()
	meta := agentMeta("ws-1", 1)
	meta.EventSeq = seq()
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: meta})
	reg := &memRegistry{servers: []registry.ServerAddr{serverAddr("ws-1", a.Addr())}, changes: make(chan string, 64)}
	go func() {
		for range reg.changes {
		}
	}()
	sink := &recSink{got: make(chan string, 256)}
	tr := New(reg, d, pool, agentAddr, fastOptions(), hclog.NewNullLogger())
	runTracker(t, tr, NewWatcher(d, sink, hclog.NewNullLogger()))
	sink.expect(t, "ws-1 opened")
	testutil.Eventually(t, 5*time.Second, "the first probe", func() bool { h, _ := tr.Health("ws-1"); return h == fleet.HealthHealthy })
	sink.quiet(t, 300*time.Millisecond) // the probe's number may have come during the first fetch: one more, with nothing

	ctr, err := client.Create(ctx, wire.CreateContainerRequest{Name: "w", Image: "img", Start: true, WorkspaceID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Exit(ctr.ID, 1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the agent logged the exit", func() bool {
		l, err := client.EventsSince(ctx, meta.EventSeq)
		return err == nil && len(l.Events) > 0 && l.Events[len(l.Events)-1].Action == "die"
	})
	sink.quiet(t, 300*time.Millisecond) // gossip has not said it yet
	latest := seq()
	probes := a.probes.Load()
	meta.Seq, meta.EventSeq = 2, latest
	pool.set(gossip.Member{Name: "ws-1", State: gossip.StateAlive, Meta: meta})
	sink.expect(t, "ws-1 die "+ctr.ID)
	if n := a.probes.Load() - probes; n > 0 {
		t.Errorf("%d probes, want none: gossip vouches for the agent", n)
	}
}

// An agent without an event log (older than the route) is followed over
// its event stream, as before.
func TestWatcherStreamFallback(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "ws-1")
	a.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == wire.PathEventLog {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"code":"not_found","message":"Not Found"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	reg := &memRegistry{servers: []registry.ServerAddr{serverAddr("ws-1", a.Addr())}, changes: make(chan string, 64)}
	go func() {
		for range reg.changes {
		}
	}()
	d := testDialer(t, pki)
	sink := &recSink{got: make(chan string, 256)}
	tr := New(reg, d, nil, agentAddr, fastOptions(), hclog.NewNullLogger())
	runTracker(t, tr, NewWatcher(d, sink, hclog.NewNullLogger()))
	sink.expect(t, "ws-1 opened")
	ctr, err := d.Client("ws-1", a.Addr()).Create(context.Background(), wire.CreateContainerRequest{Name: "w", Image: "img", Start: true, WorkspaceID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Exit(ctr.ID, 1); err != nil {
		t.Fatal(err)
	}
	sink.expect(t, "ws-1 die "+ctr.ID)
}

// A reset fetch (cursor 0: every server's first contact, all at once when
// the scheduler starts) goes through a probe client, which nothing caches
// and whose connection closes after; later fetches use the server's cached
// client and its kept-alive connections.
func TestResetFetchCachesNothing(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := startCounted(t, pki, "ws-1")
	d := testDialer(t, pki)
	sink := &recSink{got: make(chan string, 16)}
	w := NewWatcher(d, sink, hclog.NewNullLogger())
	w.fetch(context.Background(), "ws-1", a.Addr(), 0)
	sink.expect(t, "ws-1 opened")
	if n := d.Cached(); n != 0 {
		t.Errorf("after a reset fetch %d cached clients, want none", n)
	}
	w.fetch(context.Background(), "ws-1", a.Addr(), 1)
	if n := d.Cached(); n != 1 {
		t.Errorf("after a fetch from a cursor %d cached clients, want the server's one", n)
	}
}
