package registry

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"berth/scheduler/internal/fleet"
)

// Group commit. Every write of the registry goes through writeTx. Writers
// that arrive while a transaction is being written queue up; the first of
// them then writes the whole queue (up to maxBatch) as one transaction, each
// writer's work in its own savepoint, and commits it with one fsync. A
// writer whose work fails has its savepoint rolled back (only its own work
// is undone) and gets its error; the others get nil only once the batch is
// durable. If the batch itself breaks (the commit fails, or a statement was
// interrupted by its caller's context, which rolls back the whole
// transaction in SQLite) nothing of it was written, and each writer's work
// is run again in a transaction of its own, which then answers for itself.
//
// While one batch is written the next one gathers, so under load a commit
// carries as many writers as arrived during one fsync; alone, a writer
// commits at once as before.

// maxBatch bounds the writers one commit carries: a batch holds the write
// connection, and the writers wait for its fsync.
const maxBatch = 256

// wtx is a write transaction as the registry's helpers see it: the SQL
// transaction, and what the work changed that the registry's in-memory
// views follow (see usageBook).
type wtx struct {
	*sql.Tx
	usage   map[string]Usage    // per server: what the reservations changed by (parts may be negative)
	moved   map[string][]string // per server: the workspaces whose reservation came or went
	servers map[string]bool     // servers whose row changed (placement inputs)

	// rec, when set, collects the write statements (a replicated registry:
	// see record.go); recErr is the first statement that could not be.
	rec    *[]stmt
	recErr error
}

// addUsage records that workspaceID's reservation r came onto serverID
// (sign +1) or left it (sign -1).
func (t *wtx) addUsage(serverID, workspaceID string, r fleet.Resources, sign int) {
	if serverID == "" {
		return
	}
	if t.usage == nil {
		t.usage, t.moved = map[string]Usage{}, map[string][]string{}
	}
	t.moved[serverID] = append(t.moved[serverID], workspaceID)
	u := t.usage[serverID]
	if sign > 0 {
		u.Reserved = u.Reserved.Add(r)
	} else {
		u.Reserved = u.Reserved.Sub(r)
	}
	u.Workspaces += sign
	t.usage[serverID] = u
}

// serverChanged records that serverID's row was written.
func (t *wtx) serverChanged(serverID string) {
	if t.servers == nil {
		t.servers = map[string]bool{}
	}
	t.servers[serverID] = true
}

// writer is one writeTx call waiting for its batch.
type writer struct {
	ctx   context.Context
	fn    func(*wtx) error
	tx    wtx    // what fn changed, once it succeeded
	stmts []stmt // what fn wrote, in a replicated registry
	err   error
	done  chan struct{}
}

// committer queues the writers; see writeTx.
type committer struct {
	mu      sync.Mutex
	queue   []*writer
	writing bool // a writer is writing batches
}

// writeTx runs fn in a write transaction and returns once its work is
// committed (nil) or undone (fn's error, or the commit's). fn must use tx
// for every statement and may run more than once (see the group commit
// above): it must not depend on state a previous run left behind.
func (db *DB) writeTx(ctx context.Context, fn func(tx *wtx) error) error {
	w := &writer{ctx: ctx, fn: fn, done: make(chan struct{})}
	c := &db.commit
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if c.writing {
		c.mu.Unlock()
		<-w.done // the batch cannot be abandoned: its outcome is ours
		return w.err
	}
	c.writing = true
	for len(c.queue) > 0 {
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()
		db.writeBatch(batch)
		c.mu.Lock()
	}
	c.writing = false
	c.queue = nil
	c.mu.Unlock()
	return w.err
}

// writeBatch writes the batch as one transaction, or each writer alone when
// the batch breaks, then applies what the committed writers changed and
// wakes every writer.
func (db *DB) writeBatch(batch []*writer) {
	if db.proposer != nil {
		db.proposeBatch(batch) // applied through ApplyCommand
	} else {
		if len(batch) == 1 || !db.tryBatch(batch) {
			for _, w := range batch {
				w.err = db.writeOne(w)
			}
		}
		var committed []*wtx
		for _, w := range batch {
			if w.err == nil {
				committed = append(committed, &w.tx)
			}
		}
		db.applyCommitted(committed)
	}
	for _, w := range batch {
		close(w.done)
	}
}

// writeOne runs one writer in its own transaction.
func (db *DB) writeOne(w *writer) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	tx, err := db.write.BeginTx(context.WithoutCancel(w.ctx), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	w.tx = wtx{Tx: tx}
	if err := w.fn(&w.tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// tryBatch writes the batch in one transaction, each writer in a savepoint,
// and reports whether it committed. On true every writer's err is its
// outcome; on false nothing was written.
func (db *DB) tryBatch(batch []*writer) bool {
	tx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		return false
	}
	for _, w := range batch {
		if w.err = w.ctx.Err(); w.err != nil {
			continue
		}
		if _, err := tx.Exec("SAVEPOINT w"); err != nil {
			_ = tx.Rollback()
			return false
		}
		w.tx = wtx{Tx: tx}
		if w.err = w.fn(&w.tx); w.err != nil {
			// Undo this writer's work alone. If the transaction is gone (an
			// interrupted statement rolls it all back), the batch is broken.
			if _, err := tx.Exec("ROLLBACK TO w"); err != nil {
				_ = tx.Rollback()
				return false
			}
		}
		if _, err := tx.Exec("RELEASE w"); err != nil {
			_ = tx.Rollback()
			return false
		}
	}
	if err := tx.Commit(); err != nil {
		db.logger.Warn("group commit failed; writing its transactions one by one", "writers", len(batch), "error", err)
		return false
	}
	return true
}

// usageBook is what the workspaces on each server reserve, kept in memory
// in step with every committed write, so that placement reads no workspace
// rows. It is loaded once when the registry opens.
type usageBook struct {
	mu    sync.Mutex
	usage map[string]Usage
	// watchers are called after each commit that changed a server's row
	// or its reservations, with the servers concerned and their usage now.
	watchers map[int]func(changes []Change)
	nextID   int
}

// Change is what one commit changed of one server: its registry row
// (ServerRow) and/or the reservations on it (Usage, as it is now; Moved,
// the workspaces whose reservation came or went).
type Change struct {
	// Reset: the registry's contents were replaced (a replicated
	// registry restored a snapshot); the other fields are empty and
	// everything read before may be stale.
	Reset     bool
	ServerID  string
	ServerRow bool
	Usage     Usage
	Moved     []string
}

// loadUsage fills the book from the workspace rows.
func (db *DB) loadUsage(ctx context.Context) error {
	usage, err := db.ServerUsage(ctx)
	if err != nil {
		return err
	}
	db.book.mu.Lock()
	db.book.usage = usage
	db.book.mu.Unlock()
	return nil
}

// applyCommitted adds what the committed writers changed to the book and
// tells the watcher.
func (db *DB) applyCommitted(txs []*wtx) {
	b := &db.book
	var changes []Change
	idx := map[string]int{}
	change := func(id string) *Change {
		i, ok := idx[id]
		if !ok {
			i = len(changes)
			idx[id] = i
			changes = append(changes, Change{ServerID: id})
		}
		return &changes[i]
	}
	b.mu.Lock()
	for _, t := range txs {
		for id, d := range t.usage {
			u := b.usage[id]
			u.Reserved = u.Reserved.Add(d.Reserved)
			u.Workspaces += d.Workspaces
			if b.usage == nil {
				b.usage = map[string]Usage{}
			}
			b.usage[id] = u
			c := change(id)
			c.Moved = append(c.Moved, t.moved[id]...)
		}
		for id := range t.servers {
			change(id).ServerRow = true
		}
	}
	for i := range changes {
		changes[i].Usage = b.usage[changes[i].ServerID]
	}
	var watchers []func([]Change)
	if len(changes) > 0 {
		for _, fn := range b.watchers {
			watchers = append(watchers, fn)
		}
	}
	b.mu.Unlock()
	for _, fn := range watchers {
		fn(changes)
	}
}

// notifyReset tells the watchers that everything may have changed.
func (db *DB) notifyReset() {
	b := &db.book
	b.mu.Lock()
	var watchers []func([]Change)
	for _, fn := range b.watchers {
		watchers = append(watchers, fn)
	}
	b.mu.Unlock()
	for _, fn := range watchers {
		fn([]Change{{Reset: true}})
	}
}

// Usage returns what the workspaces on serverID reserve now, from memory.
func (db *DB) Usage(serverID string) Usage {
	db.book.mu.Lock()
	defer db.book.mu.Unlock()
	return db.book.usage[serverID]
}

// Watch adds fn to the functions called after each commit that changed
// servers' rows or their reservations (one call per commit, from the
// committing goroutine, in commit order; fn must not write to the
// registry; nil adds none). It returns the usage of every server at that
// moment, so a caller can build its view and then follow the changes
// without missing one, and the function that stops the calls.
func (db *DB) Watch(fn func([]Change)) (map[string]Usage, func()) {
	b := &db.book
	b.mu.Lock()
	defer b.mu.Unlock()
	stop := func() {}
	if fn != nil {
		if b.watchers == nil {
			b.watchers = map[int]func([]Change){}
		}
		id := b.nextID
		b.nextID++
		b.watchers[id] = fn
		stop = func() {
			b.mu.Lock()
			delete(b.watchers, id)
			b.mu.Unlock()
		}
	}
	out := make(map[string]Usage, len(b.usage))
	for id, u := range b.usage {
		out[id] = u
	}
	return out, stop
}
