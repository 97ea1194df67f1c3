package health

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fakeagent"
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
	servers []registry.Server
	changes chan string
}

func (m *memRegistry) ListServers(context.Context) ([]registry.Server, error) { return m.servers, nil }
func (m *memRegistry) SetServerHealth(_ context.Context, id string, h fleet.Health, _ string, _ time.Time) (bool, error) {
	m.changes <- id + "=" + string(h)
	return true, nil
}

// A probed agent that stops answering goes healthy → unreachable, and back
// when it answers again; every transition is written to the registry.
func TestTrackerProbes(t *testing.T) {
	pki := testutil.NewPKI(t)
	a := fakeagent.Start(t, pki, "ws-1")
	host, port, _ := net.SplitHostPort(a.Addr())
	p, _ := strconv.Atoi(port)
	reg := &memRegistry{servers: []registry.Server{{ID: "ws-1", IPAddress: host, AgentPort: p}}, changes: make(chan string, 16)}
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	d, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.ProbeInterval = 50 * time.Millisecond
	tr := New(reg, d, nil, func(s registry.Server) string { return net.JoinHostPort(s.IPAddress, strconv.Itoa(s.AgentPort)) }, opts, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.Run(ctx)

	expect := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-reg.changes:
				if got == want {
					return
				}
				if got != "ws-1=unknown" {
					t.Fatalf("transition %s, want %s", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no transition to %s", want)
			}
		}
	}
	expect("ws-1=healthy")
	a.Down.Store(true) // answers 503: the agent is there but unavailable
	expect("ws-1=unhealthy")
	if _, down := tr.DownSince("ws-1"); down {
		t.Error("DownSince reports a reachable (unhealthy) server as gone")
	}
	a.Down.Store(false)
	expect("ws-1=healthy")
	a.Server.Close() // nothing listens any more
	expect("ws-1=unreachable")
	if h, _ := tr.Health("ws-1"); h != fleet.HealthUnreachable {
		t.Errorf("Health = %s, want unreachable", h)
	}
	if _, down := tr.DownSince("ws-1"); !down {
		t.Error("DownSince: an unreachable server (no gossip) is not reported gone")
	}
}
