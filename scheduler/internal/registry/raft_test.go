package registry

import (
	"berth/scheduler/internal/fleet"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"berth/shared/testutil"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftNode is one scheduler of an in-process raft cluster: its own registry
// file, raft's in-memory log and transport.
type raftNode struct {
	id    raft.ServerID
	path  string
	db    *DB
	r     *raft.Raft
	trans *raft.InmemTransport
	snaps raft.SnapshotStore
	store *raft.InmemStore
	down  atomic.Bool // stopped
}

// leads tells whether the node runs and leads.
func (n *raftNode) leads() bool { return !n.down.Load() && n.r.State() == raft.Leader }

// raftCluster is n registries replicated by a real hashicorp/raft over its
// in-memory transport (fast, no ports), with timings short enough for
// tests.
type raftCluster struct {
	t     testing.TB
	nodes []*raftNode
	conf  func(raft.ServerID) *raft.Config
}

func testRaftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.Logger = hclog.NewNullLogger()
	return c
}

// newRaftCluster starts n nodes, bootstraps them as one cluster and waits
// for a leader.
func newRaftCluster(t testing.TB, n int) *raftCluster {
	t.Helper()
	c := &raftCluster{t: t, conf: testRaftConfig}
	first := c.start("sched-1", "")
	if err := first.r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: first.id, Address: first.trans.LocalAddr()}}}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	c.leader()
	if err := first.db.StartCluster(context.Background(), "test-cluster"); err != nil {
		t.Fatal(err)
	}
	if err := CompactToSnapshot(first.r); err != nil {
		t.Fatalf("compact: %v", err)
	}
	for i := 2; i <= n; i++ {
		c.join(raft.ServerID(fmt.Sprintf("sched-%d", i)))
	}
	c.converge()
	return c
}

// join starts a node with a new file and adds it to the cluster as a voter.
func (c *raftCluster) join(id raft.ServerID) *raftNode {
	c.t.Helper()
	node := c.start(id, "")
	if err := c.leader().r.AddVoter(node.id, node.trans.LocalAddr(), 0, 5*time.Second).Error(); err != nil {
		c.t.Fatalf("AddVoter %s: %v", id, err)
	}
	return node
}

// start opens a registry (at path, or a new file) and a raft node on it,
// connected to every running node.
func (c *raftCluster) start(id raft.ServerID, path string) *raftNode {
	t := c.t
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), string(id)+".db")
	}
	db, err := Open(context.Background(), path, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	node := &raftNode{id: id, path: path, db: db, store: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
	_, node.trans = raft.NewInmemTransport(raft.ServerAddress(id))
	for _, o := range c.nodes {
		if !o.down.Load() {
			node.trans.Connect(o.trans.LocalAddr(), o.trans)
			o.trans.Connect(node.trans.LocalAddr(), node.trans)
		}
	}
	node.r, err = raft.NewRaft(c.conf(id), db.FSM(), node.store, node.store, node.snaps, node.trans)
	if err != nil {
		t.Fatalf("NewRaft %s: %v", id, err)
	}
	db.SetProposer(RaftProposer(node.r, 5*time.Second))
	c.nodes = append(c.nodes, node)
	t.Cleanup(func() { c.stop(node) })
	return node
}

// stop shuts node down (as a kill: nothing more reaches it) and closes its
// registry. It may be called more than once.
func (c *raftCluster) stop(node *raftNode) {
	if node.down.Swap(true) {
		return
	}
	for _, o := range c.nodes {
		if o != node && o.trans != nil {
			o.trans.Disconnect(node.trans.LocalAddr())
		}
	}
	node.trans.DisconnectAll()
	if err := node.r.Shutdown().Error(); err != nil {
		c.t.Errorf("shutdown %s: %v", node.id, err)
	}
	if err := node.db.Close(); err != nil {
		c.t.Errorf("close %s: %v", node.id, err)
	}
}

// leader waits for a node that leads (its first write waits for its
// barrier).
func (c *raftCluster) leader() *raftNode {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.leads() {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader after 10 s")
	return nil
}

// converge waits until every running node has applied what the leader has,
// then checks that their files hold the same rows and their usage books
// agree.
func (c *raftCluster) converge() {
	t := c.t
	t.Helper()
	l := c.leader()
	// raft counts an entry applied when it hands it to the FSM (a snapshot
	// when it is restored); the file's own applied index says when the FSM
	// is done with the commands.
	raftWant := l.r.AppliedIndex()
	applied := func(n *raftNode) uint64 {
		i, err := n.db.AppliedIndex(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	want := applied(l)
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for !n.down.Load() && (n.r.AppliedIndex() < raftWant || applied(n) < want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s applied %d, leader %d", n.id, applied(n), want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	wantRows := dumpRows(t, l.db)
	wantBook, _ := l.db.Watch(nil)
	for _, n := range c.nodes {
		if n == l || n.down.Load() {
			continue
		}
		if d := cmp.Diff(wantRows, dumpRows(t, n.db)); d != "" {
			t.Errorf("%s's rows differ from the leader %s's (-leader +%s):\n%s", n.id, l.id, n.id, d)
		}
		// The book follows the commit, a moment after the file.
		for {
			book, _ := n.db.Watch(nil)
			d := cmp.Diff(wantBook, book)
			if d == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s's usage book differs from the leader's:\n%s", n.id, d)
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// dumpRows returns every row of every table, as text, sorted per table.
func dumpRows(t testing.TB, db *DB) map[string][]string {
	t.Helper()
	// sqlite_stat1 is the query planner's statistics (PRAGMA optimize at
	// Close), not contents.
	tables := queryText(t, db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_stat1' ORDER BY name")
	out := map[string][]string{}
	for _, table := range tables {
		out[table] = queryText(t, db, `SELECT * FROM "`+table+`"`)
		sort.Strings(out[table])
	}
	return out
}

// queryText returns the rows of q, each formatted as text.
func queryText(t testing.TB, db *DB, q string) []string {
	t.Helper()
	rows, err := db.read.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if len(cols) == 1 {
			out = append(out, fmt.Sprint(vals[0]))
		} else {
			out = append(out, fmt.Sprintf("%v", vals))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplicatedWritesReachEveryNode: registry writes on the leader land on
// every node's file, in the same rows, and the followers' in-memory usage
// follows; a follower refuses to write.
func TestReplicatedWritesReachEveryNode(t *testing.T) {
	c := newRaftCluster(t, 3)
	l := c.leader()
	ctx := context.Background()
	mustCreateServer(t, l.db, Server{ID: "s1", Region: "eu"})
	mustCreateServer(t, l.db, Server{ID: "s2"})
	for i := range 5 {
		ws := Workspace{ID: fmt.Sprintf("w%d", i), UserID: "u", ServerID: "s1", Reservation: fleet.Resources{CPU: 1, MemoryMB: 512}}
		mustReserve(t, l.db, ws, Limits{})
	}
	if _, err := l.db.UpdateWorkspace(ctx, "w1", func(w *Workspace) error {
		w.Status = fleet.StatusRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.db.DeleteWorkspace(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.db.AddEvent(ctx, Event{Kind: "test", Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	c.converge()

	for _, n := range c.nodes {
		if n == l {
			continue
		}
		if got := n.db.Usage("s1").Workspaces; got != 4 {
			t.Errorf("%s: s1 has %d workspaces in memory, want 4", n.id, got)
		}
		if _, err := n.db.CreateServer(ctx, Server{ID: "s3"}); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s: CreateServer on a follower: got %v, want ErrNotLeader", n.id, err)
		}
		if ws, err := n.db.GetWorkspace(ctx, "w1"); err != nil || ws.Status != fleet.StatusRunning {
			t.Errorf("%s: GetWorkspace(w1) = %v, %v; want running", n.id, ws.Status, err)
		}
	}
}

// TestReplicatedCapacityIsExact: 50 concurrent reservations against room
// for 20 take exactly 20 on every node; refusals are not replicated.
func TestReplicatedCapacityIsExact(t *testing.T) {
	c := newRaftCluster(t, 3)
	l := c.leader()
	ctx := context.Background()
	mustCreateServer(t, l.db, Server{ID: "s"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := range 50 {
		wg.Go(func() {
			ws := Workspace{ID: fmt.Sprintf("w%02d", i), UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 1}}
			_, err := l.db.ReserveAndInsert(ctx, ws, Credentials{}, Limits{CPU: 20})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrInsufficientCapacity):
				refused++
			default:
				t.Errorf("ReserveAndInsert(%s): %v", ws.ID, err)
			}
		})
	}
	wg.Wait()
	if ok != 20 || refused != 30 {
		t.Fatalf("got %d reserved and %d refused, want 20 and 30", ok, refused)
	}
	c.converge()
	for _, n := range c.nodes {
		if u := n.db.Usage("s"); u.Workspaces != 20 || u.Reserved.CPU != 20 {
			t.Errorf("%s: usage %+v, want 20 workspaces and 20 CPUs", n.id, u)
		}
	}
}

// TestLeaderKilledDuringCreates: the leader is shut down while 60 clients
// create against room for 150; every create that was acknowledged is on
// the new leader, the server ends exactly full, never past it, and the
// survivors agree. Every refusal is one a caller can act on.
func TestLeaderKilledDuringCreates(t *testing.T) {
	c := newRaftCluster(t, 3)
	ctx := context.Background()
	mustCreateServer(t, c.leader().db, Server{ID: "s"})
	c.converge()
	const room = 150

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   []string
		refused int
	)
	stop := make(chan struct{})
	for g := range 60 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var db *DB
				for _, n := range c.nodes { // whoever leads now
					if n.leads() {
						db = n.db
					}
				}
				if db == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				ws := Workspace{ID: fmt.Sprintf("g%02d-%04d", g, i), UserID: "u", ServerID: "s", Reservation: fleet.Resources{CPU: 1}}
				_, err := db.ReserveAndInsert(ctx, ws, Credentials{}, Limits{CPU: room})
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, ws.ID)
				case errors.Is(err, ErrInsufficientCapacity):
					refused++
				case errors.Is(err, ErrNotLeader), errors.Is(err, ErrOutcomeUnknown), errors.Is(err, sql.ErrConnDone),
					strings.Contains(err.Error(), "database is closed"): // the stopped node
				default:
					t.Errorf("ReserveAndInsert(%s): %v", ws.ID, err)
				}
				mu.Unlock()
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	testutil.Eventually(t, 20*time.Second, "50 creates before the kill", func() bool { return count() >= 50 })
	old := c.leader()
	c.stop(old)
	before := count()
	testutil.Eventually(t, 20*time.Second, "the new leader fills the server", func() bool {
		for _, n := range c.nodes {
			if n.leads() && n.db.Usage("s").Workspaces == room {
				return true
			}
		}
		return false
	})
	testutil.Eventually(t, 20*time.Second, "refusals once full", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused > 0
	})
	close(stop)
	wg.Wait()

	c.converge()
	l := c.leader()
	if l == old {
		t.Fatal("the stopped node still leads")
	}
	for _, id := range acked {
		if _, err := l.db.GetWorkspace(ctx, id); err != nil {
			t.Errorf("acknowledged %s: %v on the new leader", id, err)
		}
	}
	n, err := l.db.ServerUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := n["s"]; got.Workspaces != room || got.Reserved.CPU != room {
		t.Errorf("s holds %d workspaces and %v CPUs; want exactly the room, %d", got.Workspaces, got.Reserved.CPU, room)
	}
	if d := cmp.Diff(l.db.Usage("s"), n["s"]); d != "" {
		t.Errorf("usage in memory differs from the rows:\n%s", d)
	}
	t.Logf("%d creates acknowledged (%d before the kill), %d refused for room", len(acked), before, refused)
}

// TestSnapshotRestoresANewNode: a node that joins after the log was
// compacted receives a snapshot, restores it into its open registry and
// then follows the log.
func TestSnapshotRestoresANewNode(t *testing.T) {
	c := newRaftCluster(t, 3)
	l := c.leader()
	ctx := context.Background()
	mustCreateServer(t, l.db, Server{ID: "s"})
	for i := range 30 {
		mustReserve(t, l.db, Workspace{ID: fmt.Sprintf("w%02d", i), UserID: "u", ServerID: "s"}, Limits{})
	}
	// Compact the leader's log: a new node cannot be sent the entries.
	if err := CompactToSnapshot(l.r); err != nil {
		t.Fatalf("compact: %v", err)
	}
	n4 := c.join("sched-4")
	mustReserve(t, l.db, Workspace{ID: "after", UserID: "u", ServerID: "s"}, Limits{})
	c.converge()
	if got := n4.db.Usage("s").Workspaces; got != 31 {
		t.Errorf("the new node's book has %d workspaces on s, want 31", got)
	}
	if _, err := n4.db.GetWorkspace(ctx, "w07"); err != nil {
		t.Errorf("the new node lacks w07: %v", err)
	}
}

// TestStaleCommandIsSkipped: a command computed in one term that reaches
// the log in another is applied by no node.
func TestStaleCommandIsSkipped(t *testing.T) {
	localOnly(t)
	db, _ := openTestDB(t)
	mustCreateServer(t, db, Server{ID: "s"})
	cmd := encodeTestCommand(t, 3, stmt{SQL: "UPDATE servers SET region = ? WHERE id = ?", Args: []arg{{Kind: argString, S: "eu"}, {Kind: argString, S: "s"}}, Rows: 1})
	if err := db.ApplyCommand(10, 4, cmd); !errors.Is(err, ErrStaleCommand) || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ApplyCommand in term 4 of a term-3 command: got %v, want ErrStaleCommand", err)
	}
	if s, _ := db.GetServer(context.Background(), "s"); s.Region != "" {
		t.Errorf("the stale command was applied: region %q", s.Region)
	}
	if n, _ := db.AppliedIndex(context.Background()); n != 10 {
		t.Errorf("applied index %d, want 10 (the entry is consumed)", n)
	}
	// The same command in its own term applies; again at the same index it
	// is skipped.
	if err := db.ApplyCommand(11, 3, cmd); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyCommand(11, 3, cmd); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.GetServer(context.Background(), "s"); s.Region != "eu" {
		t.Errorf("region %q, want eu", s.Region)
	}
}

// TestDivergenceStopsApplying: a statement that changes another number of
// rows than on the leader stops the node.
func TestDivergenceStopsApplying(t *testing.T) {
	localOnly(t)
	path := filepath.Join(t.TempDir(), "registry.db")
	db := reopen(t, path)
	cmd := encodeTestCommand(t, 1, stmt{SQL: "UPDATE servers SET region = ? WHERE id = ?", Args: []arg{{Kind: argString, S: "eu"}, {Kind: argString, S: "gone"}}, Rows: 1})
	if err := db.ApplyCommand(1, 1, cmd); !errors.Is(err, ErrDiverged) {
		t.Fatalf("got %v, want ErrDiverged", err)
	}
	ok := encodeTestCommand(t, 1)
	if err := db.ApplyCommand(2, 1, ok); !errors.Is(err, ErrDiverged) {
		t.Fatalf("after divergence: got %v, want ErrDiverged", err)
	}
	if n, _ := db.AppliedIndex(context.Background()); n != 0 {
		t.Errorf("applied index %d after divergence, want 0", n)
	}
	// It stays stopped after a restart.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again := reopen(t, path)
	defer again.Close()
	if !again.Diverged() {
		t.Error("a reopened diverged registry applies again")
	}
	if err := again.ApplyCommand(3, 1, ok); !errors.Is(err, ErrDiverged) {
		t.Errorf("after reopening: got %v, want ErrDiverged", err)
	}
}

func encodeTestCommand(t *testing.T, term uint64, stmts ...stmt) []byte {
	t.Helper()
	w := &writer{ctx: context.Background(), stmts: stmts}
	data, err := encodeCommand(term, 1, []*writer{w})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRecordRefusesTimes: a time.Time argument would be formatted by the
// driver, differently from formatTime; the recorder refuses it.
func TestRecordRefusesTimes(t *testing.T) {
	for _, a := range []any{time.Now(), struct{}{}} {
		if _, err := encodeArgs([]any{a}); err == nil {
			t.Errorf("encodeArgs(%T): no error", a)
		}
	}
	got, err := encodeArgs([]any{nil, int64(3), 2.5, "x", []byte("y"), true, fleet.StatusRunning, 7})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil, int64(3), 2.5, "x", []byte("y"), true, string(fleet.StatusRunning), int64(7)}
	if d := cmp.Diff(want, decodeArgs(got)); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func TestIsWrite(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                              false,
		"  select x FROM t":                     false,
		"WITH a AS (SELECT 1) SELECT * FROM a":  false,
		"WITH a AS (SELECT 1) DELETE FROM t":    true,
		"INSERT INTO t VALUES (1) RETURNING id": true,
		"UPDATE t SET x = 1 RETURNING x":        true,
		"DELETE FROM t":                         true,
	} {
		if got := isWrite(q); got != want {
			t.Errorf("isWrite(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestBrokenBatchWritersSeeEachOther: when a writer breaks the shared
// transaction, the others go alone, each proposed and applied before the
// next runs: the second insert of one id finds the first.
func TestBrokenBatchWritersSeeEachOther(t *testing.T) {
	c := newRaftCluster(t, 3)
	db := c.leader().db
	ctx := context.Background()
	release, held := holdWriter(t, db)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			errs[i] = db.writeTx(ctx, func(tx *wtx) error {
				if i == 1 {
					_, _ = tx.ExecContext(ctx, "ROLLBACK") // the whole transaction goes
					return errors.New("broke it")
				}
				srv := Server{ID: "x"}
				if err := prepareServer(&srv); err != nil {
					return err
				}
				return insertServerTx(ctx, tx, srv)
			})
		})
		queued(t, db, i+1)
	}
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] == nil || !errors.Is(errs[2], ErrConflict) {
		t.Errorf("writers: %v; want nil, broke it, ErrConflict", errs)
	}
	c.converge()
	for _, n := range c.nodes {
		if n.db.Diverged() {
			t.Errorf("%s diverged", n.id)
		}
	}
}

// TestDivergedLeaderRefusesWrites: a node that stopped applying proposes
// nothing more.
func TestDivergedLeaderRefusesWrites(t *testing.T) {
	c := newRaftCluster(t, 3)
	l := c.leader()
	l.db.diverged.Store(true)
	if _, err := l.db.CreateServer(context.Background(), Server{ID: "x"}); !errors.Is(err, ErrDiverged) {
		t.Fatalf("CreateServer on a diverged leader: %v, want ErrDiverged", err)
	}
	l.db.diverged.Store(false)
	c.converge()
	for _, n := range c.nodes {
		if _, err := n.db.GetServer(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s has x: %v", n.id, err)
		}
	}
}

// TestRestoreTakesAnotherClustersSnapshot: a file from another cluster is
// replaced by the snapshot even when it has applied more entries.
func TestRestoreTakesAnotherClustersSnapshot(t *testing.T) {
	localOnly(t)
	ctx := context.Background()
	src, _ := openTestDB(t)
	mustCreateServer(t, src, Server{ID: "theirs"})
	if err := src.StartCluster(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.write.Exec("UPDATE raft_meta SET applied_index = 6"); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := src.WriteSnapshot(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	dst, _ := openTestDB(t)
	mustCreateServer(t, dst, Server{ID: "ours"})
	if err := dst.StartCluster(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.write.Exec("UPDATE raft_meta SET applied_index = 25"); err != nil {
		t.Fatal(err)
	}
	if err := dst.RestoreSnapshot(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.GetServer(ctx, "theirs"); err != nil {
		t.Errorf("after restoring another cluster's snapshot: %v", err)
	}
	if _, err := dst.GetServer(ctx, "ours"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the old cluster's server is still there: %v", err)
	}
	// The same cluster's snapshot at a lower index is skipped.
	mustCreateServer(t, dst, Server{ID: "later"})
	if _, err := dst.write.Exec("UPDATE raft_meta SET applied_index = 9"); err != nil {
		t.Fatal(err)
	}
	if err := dst.RestoreSnapshot(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.GetServer(ctx, "later"); err != nil {
		t.Errorf("a snapshot older than the file replaced it: %v", err)
	}
}

// TestStartClusterResetsTheIndex: a file that was a member of a cluster
// and starts a new one applies the new log from its first entry (a make
// run-ha, make run, make run-ha cycle lost every write up to the old index
// before the reset: the fresh-clone HA suite caught it).
func TestStartClusterResetsTheIndex(t *testing.T) {
	localOnly(t)
	ctx := context.Background()
	db, _ := openTestDB(t)
	mustCreateServer(t, db, Server{ID: "s"})
	if _, err := db.write.Exec("UPDATE raft_meta SET applied_index = 25, cluster_id = 'old'"); err != nil {
		t.Fatal(err)
	}
	if err := db.StartCluster(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	cmd := encodeTestCommand(t, 2, stmt{SQL: "UPDATE servers SET region = ? WHERE id = ?", Args: []arg{{Kind: argString, S: "eu"}, {Kind: argString, S: "s"}}, Rows: 1})
	if err := db.ApplyCommand(5, 2, cmd); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.GetServer(ctx, "s"); s.Region != "eu" {
		t.Errorf("entry 5 of the new cluster was not applied: region %q", s.Region)
	}
}
