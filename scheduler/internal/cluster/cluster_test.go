package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// testNode is one scheduler: its registry file and raft node, in dir.
type testNode struct {
	id, dir, addr string
	db            *registry.DB
	node          *Node
	onStop        []func() error // servers of the node, closed with it
}

// startNode opens id's registry in dir and its raft node on bind, with a
// scheduler certificate of pki. Timings are short: three nodes share the
// test's two cores with everything else.
func startNode(t testing.TB, pki *testutil.PKI, id, dir, bind string) *testNode {
	t.Helper()
	return startNodeTimed(t, pki, id, dir, bind, 200*time.Millisecond, 100*time.Millisecond)
}

// startNodeTimed is startNode with heartbeat and election timeouts of hb
// and a leader lease of lease.
func startNodeTimed(t testing.TB, pki *testutil.PKI, id, dir, bind string, hb, lease time.Duration) *testNode {
	t.Helper()
	cert, key := pki.Issue(id, wire.RoleScheduler, true, "127.0.0.1")
	tlsID, err := mtls.Load(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	db, err := registry.Open(context.Background(), filepath.Join(dir, "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Config{
		NodeID: id, DataDir: dir, Bind: bind, TLS: tlsID,
		HeartbeatTimeout: hb, ElectionTimeout: hb, LeaderLeaseTimeout: lease,
	}, db)
	if err != nil {
		_ = db.Close()
		t.Fatal(err)
	}
	tn := &testNode{id: id, dir: dir, addr: n.Addr(), db: db, node: n}
	t.Cleanup(tn.stop)
	return tn
}

// stop closes the node and its registry (again: nothing).
func (n *testNode) stop() {
	if n.node == nil {
		return
	}
	for _, f := range n.onStop {
		_ = f()
	}
	_ = n.node.Close()
	_ = n.db.Close()
	n.node = nil
}

// leaderOf waits for a running node that leads and can write.
func leaderOf(t testing.TB, nodes ...*testNode) *testNode {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.node == nil {
				continue
			}
			if s, _ := n.node.Status(); s.State == "Leader" {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader after 15 s")
	return nil
}

// write retries fn on the leader until it is taken (a new leader writes
// once it has applied its predecessors' entries).
func write(t testing.TB, nodes []*testNode, fn func(db *registry.DB) error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn(leaderOf(t, nodes...).db)
		if err == nil {
			return
		}
		if !errors.Is(err, registry.ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("write: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitWorkspaces waits until n's registry holds want workspaces.
func waitWorkspaces(t testing.TB, n *testNode, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := n.db.Usage("s").Workspaces
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d workspaces on s, want %d", n.id, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newCluster starts n nodes (heartbeat hb, lease lease): the first
// bootstraps, the others join.
func newCluster(t testing.TB, n int, hb, lease time.Duration) (*testutil.PKI, []*testNode) {
	t.Helper()
	pki := testutil.NewPKI(t)
	var nodes []*testNode
	for i := 1; i <= n; i++ {
		nodes = append(nodes, startNodeTimed(t, pki, fmt.Sprintf("sched-%d", i), t.TempDir(), "127.0.0.1:0", hb, lease))
	}
	if err := nodes[0].node.Bootstrap(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := nodes[0].node.AddVoter(n.id, n.addr); err != nil {
			t.Fatalf("AddVoter %s: %v", n.id, err)
		}
	}
	write(t, nodes, func(db *registry.DB) error {
		_, err := db.CreateServer(context.Background(), registry.Server{ID: "s"})
		return err
	})
	return pki, nodes
}

func reserve(id string) func(db *registry.DB) error { return reserveOn("s", id) }

// reserveOn reserves workspace id on server.
func reserveOn(server, id string) func(db *registry.DB) error {
	return func(db *registry.DB) error {
		_, err := db.ReserveAndInsert(context.Background(), registry.Workspace{
			ID: id, UserID: "u", ServerID: server, Reservation: fleet.Resources{CPU: 1},
		}, registry.Credentials{}, registry.Limits{})
		return err
	}
}

// TestClusterOverMutualTLS runs three schedulers' raft nodes over real TCP
// and mutual TLS with bbolt stores on disk: one bootstraps, two join; the
// leader is killed and a new one takes writes; the killed one restarts
// from its disk and catches up; one whose disk is wiped rejoins and is
// sent the registry as a snapshot.
func TestClusterOverMutualTLS(t *testing.T) {
	pki, nodes := newCluster(t, 3, 200*time.Millisecond, 100*time.Millisecond)
	for i := range 10 {
		write(t, nodes, reserve(fmt.Sprintf("a%02d", i)))
	}
	for _, n := range nodes {
		waitWorkspaces(t, n, 10)
	}
	s, err := nodes[2].node.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.LeaderID != "sched-1" || len(s.Members) != 3 || s.State != "Follower" {
		t.Errorf("sched-3's status: %+v; want follower of sched-1 among 3", s)
	}

	// Kill the leader: the two others elect one and take writes.
	old := leaderOf(t, nodes...)
	killed := time.Now()
	old.stop()
	for i := range 10 {
		write(t, nodes, reserve(fmt.Sprintf("b%02d", i)))
	}
	t.Logf("first write on a new leader %s after the leader's loss", time.Since(killed).Round(time.Millisecond))
	if l := leaderOf(t, nodes...); l == old {
		t.Fatal("the stopped node leads")
	}

	// It restarts from its disk, on its address, and catches up.
	back := startNode(t, pki, old.id, old.dir, old.addr)
	for i, n := range nodes {
		if n == old {
			nodes[i] = back
		}
	}
	waitWorkspaces(t, back, 20)

	// A follower loses its disk: started again empty under its id and
	// address, it is sent the registry as a snapshot (the log before the
	// bootstrap's snapshot is gone) and then the entries after it.
	var f *testNode
	for _, n := range nodes {
		if s, _ := n.node.Status(); s.State == "Follower" {
			f = n
		}
	}
	f.stop()
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	wiped := startNode(t, pki, f.id, t.TempDir(), f.addr)
	for i, n := range nodes {
		if n == f {
			nodes[i] = wiped
		}
	}
	write(t, nodes, reserve("c00"))
	for _, n := range nodes {
		waitWorkspaces(t, n, 21)
	}
	if _, err := wiped.db.GetWorkspace(context.Background(), "a03"); err != nil {
		t.Errorf("the wiped node lacks a03: %v", err)
	}
}

// TestRaftPortRefusesOtherRoles: the raft listener takes only scheduler
// certificates; an agent's is refused at the handshake.
func TestRaftPortRefusesOtherRoles(t *testing.T) {
	pki := testutil.NewPKI(t)
	n := startNode(t, pki, "sched-1", t.TempDir(), "127.0.0.1:0")
	for _, tt := range []struct {
		role string
		ok   bool
	}{{wire.RoleAgent, false}, {wire.RoleScheduler, true}} {
		cert, key := pki.Issue("client-"+tt.role, tt.role, true)
		id, err := mtls.Load(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", n.addr, mtls.ForServer(id.ClientConfig(wire.RoleScheduler), "127.0.0.1"))
		if err == nil {
			// TLS 1.3: the server's verdict on the client's certificate
			// arrives with the first read.
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		refused := err != nil && !isTimeout(err)
		if refused == tt.ok {
			t.Errorf("%s: read error %v; want refused=%v", tt.role, err, !tt.ok)
		}
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
