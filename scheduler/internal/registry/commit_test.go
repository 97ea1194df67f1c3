package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
	"berth/shared/testutil"
)

// holdWriter starts a writer that holds the write path until release is
// closed, and waits until it does: writers started afterwards queue behind
// it and go in one batch.
func holdWriter(t *testing.T, db *DB) (release chan struct{}, done chan error) {
	t.Helper()
	release, done, started := make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func() {
		done <- db.writeTx(context.Background(), func(*wtx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	return release, done
}

// queued waits until n writers wait behind the one writing.
func queued(t *testing.T, db *DB, n int) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("%d writers queued", n), func() bool {
		db.commit.mu.Lock()
		defer db.commit.mu.Unlock()
		return len(db.commit.queue) == n
	})
}

func eventKinds(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	evs, err := db.ListEvents(context.Background(), EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, e := range evs {
		kinds[e.Kind] = true
	}
	return kinds
}

// Writers queued behind a write share one commit; one that fails has only
// its own work undone.
func TestGroupCommitUndoesOnlyTheFailedWriter(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	release, held := holdWriter(t, db)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.writeTx(ctx, func(tx *wtx) error {
				if _, err := addEventTx(ctx, tx, Event{Kind: fmt.Sprintf("w%02d", i)}); err != nil {
					return err
				}
				if i%3 == 0 {
					return fmt.Errorf("writer %d refuses", i)
				}
				return nil
			})
		})
	}
	queued(t, db, n)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("holding writer: %v", err)
	}
	kinds := eventKinds(t, db)
	for i, err := range errs {
		kind, refused := fmt.Sprintf("w%02d", i), i%3 == 0
		if refused != (err != nil) {
			t.Errorf("writer %d: error %v, want refused=%v", i, err, refused)
		}
		if kinds[kind] == refused {
			t.Errorf("writer %d: its event stored = %v, want %v", i, kinds[kind], !refused)
		}
	}
}

// A writer that breaks the shared transaction (as an interrupted statement
// does) makes nothing of the batch durable as a batch: each writer runs
// again alone and answers for itself.
func TestGroupCommitBrokenBatchRunsWritersAlone(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	release, held := holdWriter(t, db)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.writeTx(ctx, func(tx *wtx) error {
				if _, err := addEventTx(ctx, tx, Event{Kind: fmt.Sprintf("w%02d", i)}); err != nil {
					return err
				}
				if i == 2 {
					_, _ = tx.ExecContext(ctx, "ROLLBACK") // the whole transaction goes
					return errors.New("broke it")
				}
				return nil
			})
		})
	}
	queued(t, db, n)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("holding writer: %v", err)
	}
	kinds := eventKinds(t, db)
	for i, err := range errs {
		broke := i == 2
		if broke != (err != nil) || kinds[fmt.Sprintf("w%02d", i)] == broke {
			t.Errorf("writer %d: error %v, event stored %v; want broke=%v", i, err, kinds[fmt.Sprintf("w%02d", i)], broke)
		}
	}
}

// A writer whose context ended while it queued is not run.
func TestGroupCommitSkipsCancelledWriter(t *testing.T) {
	db, _ := openTestDB(t)
	release, held := holdWriter(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	errc := make(chan error, 1)
	go func() {
		errc <- db.writeTx(ctx, func(*wtx) error { ran = true; return nil })
	}()
	queued(t, db, 1)
	cancel()
	close(release)
	if err := <-errc; !errors.Is(err, context.Canceled) || ran {
		t.Errorf("cancelled writer: error %v, ran %v; want context.Canceled, not run", err, ran)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}

func TestReserveAndInsertReturnsStoredRow(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	mustCreateServer(t, db, Server{ID: "s", Hostname: "s.example"})
	got, err := db.ReserveAndInsert(ctx, Workspace{ID: "w", UserID: "u", SessionID: "x", Tier: "pro", ServerID: "s",
		Reservation: fleet.Resources{CPU: 2, MemoryMB: 4096}, Environment: map[string]string{"A": "b"},
		Metadata: map[string]any{"k": "v"}}, Credentials{Git: "u:p"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := db.GetWorkspace(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stored, got, cmpOpts...); diff != "" {
		t.Errorf("ReserveAndInsert's row differs from the stored one (-stored +returned):\n%s", diff)
	}
	if got.Epoch != 1 || got.Host != "s.example" {
		t.Errorf("epoch %d host %q, want 1 and s.example", got.Epoch, got.Host)
	}
}

// The in-memory usage follows every kind of write, under concurrency, and
// equals what the rows say (ServerUsage sums them); the watcher hears of
// every change.
func TestUsageBookFollowsWrites(t *testing.T) {
	db, path := openTestDB(t)
	ctx := context.Background()
	servers := []string{"a", "b", "c"}
	for _, s := range servers {
		mustCreateServer(t, db, Server{ID: s})
	}
	var mu sync.Mutex
	heard := map[string]Usage{}
	start, stop := db.Watch(func(cs []Change) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			heard[c.ServerID] = c.Usage
		}
	})
	defer stop()
	if len(start) != 0 {
		t.Errorf("Watch on an empty registry = %v, want none", start)
	}
	limits := Limits{CPU: 40, MemoryMB: 1 << 16, MaxWorkspaces: 30}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 60 {
				id := fmt.Sprintf("w%d-%d", g, r.IntN(12))
				srv := servers[r.IntN(len(servers))]
				res := fleet.Resources{CPU: float64(1 + r.IntN(3)), MemoryMB: int64(512 * (1 + r.IntN(4)))}
				var err error
				switch op := (i + r.IntN(5)) % 5; op {
				case 0, 1:
					_, err = db.ReserveAndInsert(ctx, Workspace{ID: id, UserID: "u", ServerID: srv, Reservation: res}, Credentials{}, limits)
				case 2:
					_, err = db.MoveWorkspace(ctx, id, srv, limits)
				case 3:
					_, err = db.ResizeWorkspace(ctx, id, res, limits)
				case 4:
					err = db.DeleteWorkspace(ctx, id)
				}
				if err != nil && !errors.Is(err, ErrExists) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInsufficientCapacity) {
					t.Errorf("op on %s: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	want, err := db.ServerUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Usage{}
	for _, s := range servers {
		got[s] = db.Usage(s)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("in-memory usage differs from the rows (-rows +memory):\n%s", diff)
	}
	mu.Lock()
	for s, u := range heard {
		if diff := cmp.Diff(want[s], u); diff != "" {
			t.Errorf("watcher's last usage of %s differs from the rows (-rows +heard):\n%s", s, diff)
		}
	}
	mu.Unlock()
	again := reopen(t, path) // a second handle loads the usage from the rows
	defer again.Close()
	loaded, _ := again.Watch(nil)
	if diff := cmp.Diff(want, loaded); diff != "" {
		t.Errorf("usage loaded on open differs from the rows (-rows +loaded):\n%s", diff)
	}
}
