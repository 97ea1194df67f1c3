package app

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/config"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// The running scheduler admits an agent registered after it started: its
// admission loop runs (Background), so the agent goes from an unregistered
// candidate to a member without a restart.
func TestGossipAdmitsAServerRegisteredLater(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	bind := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	_, a := benchApp(t, 0, func(c *config.Config) {
		c.GossipKey, c.GossipBind, c.ClusterLabel = key, bind, "berth-test"
	})
	agent, err := gossip.New(gossip.Config{Name: "ws-late", BindAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t))),
		Key: key, Label: "berth-test", Fast: true},
		wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "ws-late", CPUMilli: 2000, Region: "local"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Leave(time.Second) })
	if _, err := agent.Join([]string{bind}); err != nil {
		t.Fatal(err)
	}
	seen := func(unregistered bool) func() bool {
		return func() bool {
			for _, m := range a.pool.Members() {
				if m.Name == "ws-late" && m.State == gossip.StateAlive && m.Unregistered == unregistered {
					return true
				}
			}
			return false
		}
	}
	testutil.Eventually(t, 10*time.Second, "ws-late listed as an unregistered candidate", seen(true))
	if _, err := a.db.CreateServer(context.Background(), registry.Server{ID: "ws-late", Hostname: "127.0.0.1", IPAddress: "127.0.0.1", AgentPort: 7443}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "ws-late admitted once registered (its next push-pull, every 10 s)", seen(false))
}
