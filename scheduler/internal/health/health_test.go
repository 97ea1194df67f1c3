package health

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

func TestDecide(t *testing.T) {
	tr := &Tracker{opts: DefaultOptions()}
	tests := []struct {
		name  string
		state serverState
		want  fleet.Health
	}{
		{"never probed", serverState{}, fleet.HealthUnknown},
		{"probed ok", serverState{probed: true, dockerOK: true}, fleet.HealthHealthy},
		{"gossip dead wins over a good probe", serverState{probed: true, dockerOK: true, gossipState: gossip.StateDead}, fleet.HealthUnreachable},
		{"gossip suspect is not enough", serverState{probed: true, dockerOK: true, gossipState: gossip.StateSuspect}, fleet.HealthHealthy},
		{"one failed probe is not enough", serverState{probed: true, dockerOK: true, failures: 1, unreachable: true}, fleet.HealthHealthy},
		{"two unreachable probes", serverState{probed: true, dockerOK: true, failures: 2, unreachable: true}, fleet.HealthUnreachable},
		{"two failed probes", serverState{probed: true, dockerOK: true, failures: 2}, fleet.HealthUnhealthy},
		{"docker down", serverState{probed: true, dockerOK: false}, fleet.HealthUnhealthy},
		{"cpu above 95", serverState{probed: true, dockerOK: true, cpuPct: 96}, fleet.HealthDegraded},
		{"memory above 95", serverState{probed: true, dockerOK: true, memPct: 95.5}, fleet.HealthDegraded},
		{"exactly 95 is fine", serverState{probed: true, dockerOK: true, cpuPct: 95, memPct: 95}, fleet.HealthHealthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, reason := tr.decideLocked(&tt.state); got != tt.want {
				t.Errorf("decide = %s (%s), want %s", got, reason, tt.want)
			}
		})
	}
}

type memRegistry struct {
	servers []registry.ServerAddr
	changes chan string
}

func (m *memRegistry) ListServerAddrs(context.Context) ([]registry.ServerAddr, error) {
	return m.servers, nil
}
func (m *memRegistry) SetServerHealth(_ context.Context, id string, h fleet.Health, _ string, _ time.Time) (bool, error) {
	m.changes <- id + "=" + string(h)
	return true, nil
}

// A probed agent whose dockerd fails, or that answers 503, goes healthy →
// unhealthy; one that stops listening goes unreachable; each comes back
// when the agent serves again, and every transition is written to the
// registry.
func TestTrackerProbes(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := agenttest.Start(t, pki, "ws-1")
	host, port, _ := net.SplitHostPort(a.Addr())
	p, _ := strconv.Atoi(port)
	reg := &memRegistry{servers: []registry.ServerAddr{{ID: "ws-1", IPAddress: host, AgentPort: p}}, changes: make(chan string, 16)}
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	d, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.ProbeInterval = 50 * time.Millisecond
	tr := New(reg, d, nil, func(s registry.Server) string { return net.JoinHostPort(s.IPAddress, strconv.Itoa(s.AgentPort)) }, opts, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		for { // the tracker may be writing a transition: let it finish
			select {
			case <-done:
				return
			case <-reg.changes:
			}
		}
	})

	// expect waits for the transition to want. The only writes allowed on
	// the way are the initial unknown and a re-write of the current health
	// (a failing server's reason changes with every failed probe).
	last := "ws-1=unknown"
	expect := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-reg.changes:
				if got == want {
					last = got
					return
				}
				if got != last && got != "ws-1=unknown" {
					t.Fatalf("transition %s, want %s", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no transition to %s", want)
			}
		}
	}
	steps := []struct {
		name     string
		act      func()
		want     string
		wantDown bool // DownSince reports the server gone
	}{
		{"first probe", func() {}, "ws-1=healthy", false},
		{"dockerd down: the agent answers, unhealthy", func() { a.SetDockerDown(true) }, "ws-1=unhealthy", false},
		{"dockerd back", func() { a.SetDockerDown(false) }, "ws-1=healthy", false},
		{"agent answers 503: there but unavailable", func() { a.SetDown(true) }, "ws-1=unhealthy", false},
		{"agent serves again", func() { a.SetDown(false) }, "ws-1=healthy", false},
		{"nothing listens any more: gone (no gossip)", a.Close, "ws-1=unreachable", true},
	}
	for _, st := range steps {
		st.act()
		expect(st.want)
		want := fleet.Health(st.want[len("ws-1="):])
		if h, _ := tr.Health("ws-1"); h != want {
			t.Errorf("%s: Health = %s, want %s", st.name, h, want)
		}
		if _, down := tr.DownSince("ws-1"); down != st.wantDown {
			t.Errorf("%s: DownSince reports gone = %v, want %v", st.name, down, st.wantDown)
		}
	}
}
