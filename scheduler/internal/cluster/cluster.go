// Package cluster runs a scheduler's raft node (hashicorp/raft): the log
// and stable store in bbolt (raft-boltdb), snapshots of the registry in
// files, and the transport between schedulers over mutual TLS, where both
// ends must hold a scheduler certificate. The registry is the state
// machine (registry.DB.FSM) and writes through it once Open has set its
// proposer; see registry/replicate.go and docs/design/scheduler-ha.md.
//
// This is the first part of issue 14: the replicated registry and its
// node. The scheduler does not start one yet (no serve --bootstrap/--join,
// no forwarding to the leader, background loops not yet leader-only).
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"berth/scheduler/internal/registry"
	"berth/shared/mtls"
	"berth/shared/wire"
)

// Config is one scheduler's raft node.
type Config struct {
	// NodeID is the scheduler's raft id; other schedulers dial it by
	// Advertise and verify that its certificate names Advertise's host.
	NodeID string
	// DataDir holds raft/ (raft.db: the log and raft's own state; and the
	// snapshots).
	DataDir string
	// Bind is the address the raft listener takes ("127.0.0.1:0" picks a
	// port); Advertise the one others dial (default: the listener's).
	Bind, Advertise string
	// TLS is the scheduler's certificate, CA and revocation list.
	TLS *mtls.Identity
	// Raft timings; zero takes the defaults below.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// ApplyTimeout bounds a write's wait for its entry to commit (default
	// 10 s).
	ApplyTimeout time.Duration
	Logger       hclog.Logger
}

// Defaults of Config's timings: raft's own. Half of them (the design's
// first choice, elections in about a second) made the leader of the local
// cluster step down while 100 creates started containers on the same two
// cores: its heartbeats came too late for its lease.
const (
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultApplyTimeout       = 10 * time.Second
)

// Node is a running raft node with the registry as its state machine.
type Node struct {
	cfg   Config
	r     *raft.Raft
	db    *registry.DB
	store *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
	trans *raft.NetworkTransport
	mux   *mux
	proxy *httputil.ReverseProxy // to the leader (forward.go)
	log   hclog.Logger
	// hasState: raft state was on disk at Open.
	hasState bool
	// readyTerm is the term in which this leader applied every earlier
	// entry (ready, forward.go).
	readyTerm atomic.Uint64
	readyMu   sync.Mutex
}

// Open starts the node on db and makes db replicated: from then on its
// writes succeed only on the leader. A node with no raft state yet waits
// for Bootstrap or for a leader to add it (AddVoter).
func Open(cfg Config, db *registry.DB) (*Node, error) {
	if cfg.NodeID == "" || cfg.DataDir == "" || cfg.TLS == nil {
		return nil, errors.New("cluster: a node id, a data directory and TLS are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	log := cfg.Logger.Named("raft")
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("cluster: raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, log)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	hasState, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m, err := listen(cfg, log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{m}, MaxPool: 3, Timeout: 10 * time.Second, Logger: log,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = or(cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	rc.ElectionTimeout = or(cfg.ElectionTimeout, DefaultElectionTimeout)
	rc.LeaderLeaseTimeout = or(cfg.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	rc.Logger = log
	r, err := raft.NewRaft(rc, db.FSM(), store, store, snaps, trans)
	if err != nil {
		_ = trans.Close()
		_ = m.close()
		_ = store.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	db.SetProposer(registry.RaftProposer(r, or(cfg.ApplyTimeout, DefaultApplyTimeout)))
	n := &Node{cfg: cfg, r: r, db: db, store: store, snaps: snaps, trans: trans, mux: m, log: log, hasState: hasState}
	// A node that stops applying hands its leadership on and leaves raft:
	// it must be wiped and rejoin (registry.ErrDiverged).
	db.OnDiverge(func() {
		if r.State() == raft.Leader {
			_ = r.LeadershipTransfer().Error()
		}
		_ = r.Shutdown().Error()
	})
	n.proxy = n.newProxy()
	return n, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// HasState tells whether the node had raft state when it opened: it is a
// member of a cluster already, and bootstrap and join are not needed.
func (n *Node) HasState() bool { return n.hasState }

// Addr is the address other schedulers dial.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Bootstrap makes a new cluster of this node alone, waits until it leads,
// and compacts its log to a snapshot of its registry: schedulers that join
// are sent the file itself, including what it held before raft. A node
// that already has raft state refuses (raft.ErrCantBootstrap).
func (n *Node) Bootstrap(timeout time.Duration) error {
	err := n.r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{ID: raft.ServerID(n.cfg.NodeID), Address: n.trans.LocalAddr()},
	}}).Error()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := n.WaitLeader(timeout); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := n.db.StartCluster(context.Background(), uuid.NewString()); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := registry.CompactToSnapshot(n.r); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// WaitLeader waits until the cluster has a leader.
func (n *Node) WaitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if addr, _ := n.r.LeaderWithID(); addr != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no leader after %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// AddVoter adds the scheduler id at addr to the cluster; this node must
// lead.
func (n *Node) AddVoter(id, addr string) error {
	return n.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, or(n.cfg.ApplyTimeout, DefaultApplyTimeout)).Error()
}

// RemoveServer takes the scheduler id out of the cluster; this node must
// lead.
func (n *Node) RemoveServer(id string) error {
	return n.r.RemoveServer(raft.ServerID(id), 0, or(n.cfg.ApplyTimeout, DefaultApplyTimeout)).Error()
}

// Status is a node's view of the cluster.
type Status struct {
	ID           string    `json:"id"`
	State        string    `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID     string    `json:"leader_id"`
	LeaderAddr   string    `json:"leader_addr"`
	Term         uint64    `json:"term"`
	CommitIndex  uint64    `json:"commit_index"`
	AppliedIndex uint64    `json:"applied_index"`
	LastContact  time.Time `json:"last_contact"` // from the leader; zero on the leader
	Members      []Member  `json:"members"`
}

// Member is one scheduler of the configuration.
type Member struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Voter   bool   `json:"voter"`
	Leading bool   `json:"leading"`
}

// Status returns the node's view.
func (n *Node) Status() (Status, error) {
	addr, id := n.r.LeaderWithID()
	s := Status{
		ID: n.cfg.NodeID, State: n.r.State().String(), LeaderID: string(id), LeaderAddr: string(addr),
		Term: n.r.CurrentTerm(), CommitIndex: n.r.CommitIndex(), AppliedIndex: n.r.AppliedIndex(),
	}
	if n.r.State() != raft.Leader {
		s.LastContact = n.r.LastContact()
	}
	f := n.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return s, err
	}
	for _, m := range f.Configuration().Servers {
		s.Members = append(s.Members, Member{ID: string(m.ID), Addr: string(m.Address), Voter: m.Suffrage == raft.Voter, Leading: m.ID == id})
	}
	return s, nil
}

// Close stops the node and closes its store; the registry stays open
// (its owner closes it).
func (n *Node) Close() error {
	err := n.r.Shutdown().Error()
	return errors.Join(err, n.trans.Close(), n.mux.close(), n.store.Close())
}

// Leader returns the leader's id and raft address ("" when there is
// none), and whether it is this node.
func (n *Node) Leader() (id, addr string, self bool) {
	a, i := n.r.LeaderWithID()
	return string(i), string(a), i != "" && string(i) == n.cfg.NodeID
}

// IsLeader tells whether this node leads now.
func (n *Node) IsLeader() bool { return n.r.State() == raft.Leader }

// Term is the node's current raft term.
func (n *Node) Term() uint64 { return n.r.CurrentTerm() }

// ID is the node's raft id.
func (n *Node) ID() string { return n.cfg.NodeID }

// HTTPListener is where requests forwarded by other schedulers, and their
// join calls, arrive (over the raft port's mutual TLS); serve Forward's
// handler on it.
func (n *Node) HTTPListener() net.Listener { return n.mux.http }

// The raft port carries three things, told apart by the first byte a
// dialler sends, as Nomad and Consul do on their RPC port: raft's own
// traffic, HTTP (requests a follower forwards to the leader, and the join
// call), nothing else. Both ends are schedulers: the listener takes
// scheduler certificates only.
const (
	protoRaft byte = 'R'
	protoHTTP byte = 'H'
)

// mux accepts the TLS connections of the raft port and hands each to raft
// or to the HTTP server by its first byte.
type mux struct {
	l      net.Listener
	client *tls.Config
	adv    net.Addr
	raft   *chanListener
	http   *chanListener
	log    hclog.Logger
	done   chan struct{}
}

func listen(cfg Config, log hclog.Logger) (*mux, error) {
	l, err := tls.Listen("tcp", cfg.Bind, cfg.TLS.ServerConfig(wire.RoleScheduler))
	if err != nil {
		return nil, fmt.Errorf("cluster: raft listener: %w", err)
	}
	adv := l.Addr()
	if cfg.Advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("cluster: advertise address: %w", err)
		}
		adv = hostAddr(cfg.Advertise) // kept as a name: peers verify it
	}
	m := &mux{l: l, client: cfg.TLS.ClientConfig(wire.RoleScheduler), adv: adv, log: log, done: make(chan struct{})}
	m.raft, m.http = newChanListener(adv), newChanListener(adv)
	go m.serve()
	return m, nil
}

// serve accepts until the listener closes; each connection's first byte
// is read on its own goroutine (a slow client holds no one else up).
func (m *mux) serve() {
	defer close(m.done)
	for {
		c, err := m.l.Accept()
		if err != nil {
			m.raft.close()
			m.http.close()
			return
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				_ = c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			switch b[0] {
			case protoRaft:
				m.raft.deliver(c)
			case protoHTTP:
				m.http.deliver(c)
			default:
				m.log.Warn("raft port: unknown protocol byte", "byte", b[0], "from", c.RemoteAddr())
				_ = c.Close()
			}
		}()
	}
}

func (m *mux) close() error {
	err := m.l.Close()
	<-m.done
	return err
}

// dial opens a connection to a scheduler's raft port for proto. The
// certificate must name the host dialled.
func (m *mux) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{Config: mtls.ForServer(m.client, host)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// raftLayer is raft's stream layer on the mux.
type raftLayer struct{ m *mux }

func (r raftLayer) Accept() (net.Conn, error) { return r.m.raft.Accept() }
func (r raftLayer) Close() error              { return r.m.raft.Close() }
func (r raftLayer) Addr() net.Addr            { return r.m.adv }
func (r raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.m.dial(ctx, string(addr), protoRaft)
}

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.once.Do(func() { close(l.closed) }) }

func (l *chanListener) Close() error   { l.close(); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// hostAddr is an advertised host:port, a name or an IP.
type hostAddr string

func (hostAddr) Network() string  { return "tcp" }
func (a hostAddr) String() string { return string(a) }

// RaftFigures is what /metrics shows of the node (metrics.Raft).
func (n *Node) RaftFigures() (state, leader string, term, commit, applied uint64, voters int) {
	_, id := n.r.LeaderWithID()
	if f := n.r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
	}
	return n.r.State().String(), string(id), n.r.CurrentTerm(), n.r.CommitIndex(), n.r.AppliedIndex(), voters
}
