package registry

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

// A replicated registry (issue 14; docs/design/scheduler-ha.md). Several
// schedulers keep one registry: each has its own SQLite file, and a raft
// log orders the writes. On the leader, group commit runs a batch of
// writers as it always does, each in its savepoint, but records the
// statements each one executed (record.go) and then rolls the transaction
// back: nothing is written yet. The batch goes into the log as one command;
// once raft has committed it on a majority, every node (the leader too)
// applies it with ApplyCommand in one SQLite transaction that also stores
// the entry's index. Only then is each writer answered. A create's 201 is
// therefore on a majority of the schedulers when it is sent.
//
// Every command was computed against exactly the state that the entries
// before it produce, so the capacity checks inside the transaction stay
// exact: the Proposer answers only once the command is applied on the
// leader, the committer runs one batch at a time, and a new leader applies
// everything before its term (raft.Barrier) before it proposes. A node that
// applies a statement and sees another number of changed rows than the
// leader did has a file that is not the leader's: it stops applying
// (ErrDiverged) rather than go on from a wrong state.
//
// Raft itself is in package cluster; this file is what the registry gives
// it: the proposer hook, ApplyCommand, and snapshots (WriteSnapshot,
// RestoreSnapshot).

// Proposer puts a command into the replicated log.
type Proposer interface {
	// Lead returns the raft term in which this node leads, once it has
	// applied every entry of the terms before (raft.Barrier); ErrNotLeader
	// when it does not lead. A batch is executed only after Lead.
	Lead() (term uint64, err error)
	// Propose returns nil once data is committed on a majority and applied
	// on this node (ApplyCommand), or the error that kept it from being;
	// ErrNotLeader when this node may not propose. After any other error
	// the outcome is unknown: the entry may still commit.
	Propose(data []byte) error
}

// ErrNotLeader: a write reached a scheduler that is not the raft leader
// (or a new leader before it has applied its predecessors' entries).
var ErrNotLeader = errors.New("this scheduler is not the leader")

// ErrDiverged: applying a replicated command did not do on this file what
// it did on the leader's (or could not be done at all). The node stops
// applying and proposing, and says so again after a restart: its file must
// be restored from a snapshot (wipe its data and rejoin).
var ErrDiverged = errors.New("registry diverged from the leader")

// ErrOutcomeUnknown: a write was proposed but its fate was not learnt (the
// leader lost its term or stopped meanwhile): it may or may not be in the
// registry. A caller retries with the same identifiers.
var ErrOutcomeUnknown = errors.New("the write's outcome is unknown: leadership changed while it was replicated")

// commandFormat is the version of command's encoding.
const commandFormat = 1

// command is one raft entry: one group-commit batch.
type command struct {
	Format int
	// Term is the term in which the leader executed the batch. An entry
	// whose log term is another (the leader lost its term between executing
	// and proposing, and leads again) was computed against a state other
	// entries may have changed since: every node skips it.
	Term uint64
	// Schema is the leader's schema version: a node with an older one
	// stops rather than apply statements its tables may not take.
	Schema  uint
	Writers []writerCommand
}

// ErrStaleCommand: a command reached the log in another term than the one
// it was computed in; it was not applied (see command.Term).
var ErrStaleCommand = fmt.Errorf("leadership changed while the write was proposed; it was not applied: %w", ErrNotLeader)

// writerCommand is what one writer of the batch wrote, and what the
// registry's in-memory views must follow (see wtx).
type writerCommand struct {
	Stmts   []stmt
	Usage   map[string]Usage
	Moved   map[string][]string
	Servers map[string]bool
}

// SetProposer makes the registry replicated: from then on every write is
// proposed through p and applied by ApplyCommand. It must be called before
// the first write.
func (db *DB) SetProposer(p Proposer) { db.proposer = p }

// proposeBatch runs the batch's writers on the leader's file, recording
// their statements, rolls it back, and proposes what the successful ones
// wrote as one command.
func (db *DB) proposeBatch(batch []*writer) {
	fail := func(err error) {
		for _, w := range batch {
			w.err = err
		}
	}
	if db.diverged.Load() {
		fail(ErrDiverged)
		return
	}
	term, err := db.proposer.Lead()
	if err != nil {
		fail(err)
		return
	}
	if !db.recordBatch(batch) {
		// The shared transaction broke. Each writer goes alone, proposed
		// and applied before the next one runs: it must see its work.
		for _, w := range batch {
			db.proposeBatch([]*writer{w})
		}
		return
	}
	var in []*writer
	for _, w := range batch {
		if w.err == nil {
			in = append(in, w)
		}
	}
	if len(in) == 0 {
		return
	}
	data, err := encodeCommand(term, db.schemaVersion, in)
	if err == nil {
		err = db.proposer.Propose(data)
	}
	for _, w := range in {
		w.err = err
	}
}

// encodeCommand encodes what the writers wrote, in term, as one command.
func encodeCommand(term uint64, schema uint, writers []*writer) ([]byte, error) {
	cmd := command{Format: commandFormat, Term: term, Schema: schema}
	for _, w := range writers {
		cmd.Writers = append(cmd.Writers, writerCommand{Stmts: w.stmts, Usage: w.tx.usage, Moved: w.tx.moved, Servers: w.tx.servers})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(cmd); err != nil {
		return nil, fmt.Errorf("encode replicated command: %w", err)
	}
	return buf.Bytes(), nil
}

// recordBatch runs the writers in one transaction, each in a savepoint,
// recording what each wrote, and rolls it all back. It reports false when
// the transaction broke (nothing of the writers' outcomes holds then); a
// batch of one always answers for its writer.
func (db *DB) recordBatch(batch []*writer) bool {
	alone := len(batch) == 1
	tx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		if alone {
			batch[0].err = fmt.Errorf("begin: %w", err)
			return true
		}
		return false
	}
	defer func() { _ = tx.Rollback() }()
	for _, w := range batch {
		w.stmts = nil
		if w.err = w.ctx.Err(); w.err != nil {
			continue
		}
		if !alone {
			if _, err := tx.Exec("SAVEPOINT w"); err != nil {
				return false
			}
		}
		w.tx = wtx{Tx: tx, rec: &w.stmts}
		w.err = w.fn(&w.tx)
		if w.err == nil {
			w.err = w.tx.recErr
		}
		if w.err != nil {
			w.stmts = nil
			if !alone {
				if _, err := tx.Exec("ROLLBACK TO w"); err != nil {
					return false
				}
			}
		}
		if !alone {
			if _, err := tx.Exec("RELEASE w"); err != nil {
				return false
			}
		}
	}
	return true
}

// ApplyCommand applies the raft entry at index (of term) to the file: the
// statements of every writer in it, in one transaction that also records
// index as applied. An entry at or below the applied index (one a restored
// snapshot already holds) is skipped. It then updates the in-memory views
// as a local commit does. An entry that does not apply as on the leader,
// or cannot be applied at all after a few tries, stops the node
// (ErrDiverged): raft counts an entry applied once Apply returns, so going
// on would leave it out for good.
func (db *DB) ApplyCommand(index, term uint64, data []byte) error {
	if db.diverged.Load() {
		return ErrDiverged
	}
	var cmd command
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&cmd); err != nil {
		return db.diverge(index, fmt.Errorf("decode: %w", err))
	}
	if cmd.Format != commandFormat || cmd.Schema > db.schemaVersion {
		return db.diverge(index, fmt.Errorf("command format %d, schema %d: this scheduler knows format %d, schema %d; upgrade it",
			cmd.Format, cmd.Schema, commandFormat, db.schemaVersion))
	}
	var err error
	for try := range 3 {
		if try > 0 {
			time.Sleep(time.Duration(try) * 50 * time.Millisecond)
		}
		var deltas []*wtx
		deltas, err = db.applyOnce(index, term, &cmd)
		if err == nil {
			db.applyCommitted(deltas)
			return nil
		}
		if errors.Is(err, ErrStaleCommand) {
			return err
		}
		db.logger.Warn("replicated entry did not apply; trying again", "index", index, "error", err)
	}
	return db.diverge(index, err)
}

// applyOnce is one try of ApplyCommand: it commits, or writes nothing.
func (db *DB) applyOnce(index, term uint64, cmd *command) ([]*wtx, error) {
	ctx := context.Background()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var applied uint64
	if err := tx.QueryRowContext(ctx, "SELECT applied_index FROM raft_meta WHERE id = 1").Scan(&applied); err != nil {
		return nil, err
	}
	if index <= applied {
		return nil, nil
	}
	stale := cmd.Term != term
	var deltas []*wtx
	for _, w := range cmd.Writers {
		if stale {
			break
		}
		for _, s := range w.Stmts {
			res, err := tx.ExecContext(ctx, s.SQL, decodeArgs(s.Args)...)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", firstLine(s.SQL), err)
			}
			if n, err := res.RowsAffected(); s.Rows >= 0 && (err != nil || n != s.Rows) {
				return nil, fmt.Errorf("%s changed %d rows, %d on the leader", firstLine(s.SQL), n, s.Rows)
			}
		}
		deltas = append(deltas, &wtx{usage: w.Usage, moved: w.Moved, servers: w.Servers})
	}
	if _, err := tx.ExecContext(ctx, "UPDATE raft_meta SET applied_index = ?, applied_term = ? WHERE id = 1", int64(index), int64(term)); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if stale {
		return nil, ErrStaleCommand
	}
	return deltas, nil
}

// diverge stops the node: no more applies or proposals, now or after a
// restart (the reason is kept in the file), and the hook (OnDiverge) is
// told, so that the node can hand over its leadership.
func (db *DB) diverge(index uint64, err error) error {
	err = fmt.Errorf("apply entry %d: %w: %w", index, ErrDiverged, err)
	db.diverged.Store(true)
	db.logger.Error("replicated entry does not apply as on the leader: this scheduler stops applying; wipe its data and rejoin",
		"index", index, "error", err)
	if _, werr := db.write.ExecContext(context.Background(), "UPDATE raft_meta SET diverged = ? WHERE id = 1", err.Error()); werr != nil {
		db.logger.Error("could not record the divergence in the file", "error", werr)
	}
	if fn := db.onDiverge; fn != nil {
		go fn()
	}
	return err
}

// loadDiverged reads whether the file stopped applying before.
func (db *DB) loadDiverged(ctx context.Context) error {
	var why string
	if err := db.write.QueryRowContext(ctx, "SELECT diverged FROM raft_meta WHERE id = 1").Scan(&why); err != nil {
		return err
	}
	if why != "" {
		db.diverged.Store(true)
		db.logger.Error("this registry stopped applying replicated entries earlier; wipe its data and rejoin", "reason", why)
	}
	return nil
}

// OnDiverge sets a function called (on its own goroutine) when the node
// stops applying.
func (db *DB) OnDiverge(fn func()) { db.onDiverge = fn }

// Diverged tells whether the node stopped applying (ErrDiverged).
func (db *DB) Diverged() bool { return db.diverged.Load() }

// StartCluster makes the file the registry of cluster id, at the start of
// its log: the applied index goes back to 0, since the new log's entries
// are numbered from 1. The scheduler that bootstraps a cluster calls it
// before the first snapshot, which carries the id to every other (a
// snapshot of another cluster is always restored, whatever its index); a
// scheduler that leaves its cluster calls it with "". Without the reset, a
// file that was a member before would skip every entry of the new log up
// to its old index, and lose those writes.
func (db *DB) StartCluster(ctx context.Context, id string) error {
	if _, err := db.write.ExecContext(ctx,
		"UPDATE raft_meta SET cluster_id = ?, applied_index = 0, applied_term = 0 WHERE id = 1", id); err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	return nil
}

// raftMeta is what a file says of its replication.
type raftMeta struct {
	applied uint64
	cluster string
}

func readRaftMeta(ctx context.Context, q queryer) (raftMeta, error) {
	var m raftMeta
	var applied int64
	err := q.QueryRowContext(ctx, "SELECT applied_index, cluster_id FROM raft_meta WHERE id = 1").Scan(&applied, &m.cluster)
	m.applied = uint64(applied)
	return m, err
}

// AppliedIndex returns the index of the last raft entry applied to the file
// (0: none).
func (db *DB) AppliedIndex(ctx context.Context) (uint64, error) {
	var n int64
	if err := db.read.QueryRowContext(ctx, "SELECT applied_index FROM raft_meta WHERE id = 1").Scan(&n); err != nil {
		return 0, fmt.Errorf("applied index: %w", err)
	}
	return uint64(n), nil
}

// WriteSnapshot writes a consistent copy of the file (VACUUM INTO, on the
// read pool: writers go on) to w. The copy may hold entries past the one
// raft asked for; they are skipped when the log replays them after a
// restore, since the copy carries its own applied index.
func (db *DB) WriteSnapshot(ctx context.Context, w io.Writer) error {
	tmp, err := db.tempFile("snapshot")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := db.read.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// RestoreSnapshot replaces the file's contents with the snapshot read from
// r, unless the file has already applied as much (a restart: raft restores
// its last snapshot first) and is not new. The copy goes in through SQLite's backup API on
// the write connection, so the connection pools stay open and a reader sees
// the old contents or the new, never a mix. The in-memory views are rebuilt
// and the watchers are told (Change.Reset).
func (db *DB) RestoreSnapshot(ctx context.Context, r io.Reader) error {
	tmp, err := db.tempFile("restore")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	_, err = io.Copy(f, r)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	src, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: tmp}).EscapedPath()+"?mode=ro")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer src.Close()
	theirs, err := readRaftMeta(ctx, src)
	if err != nil {
		return fmt.Errorf("restore: the snapshot: %w", err)
	}
	ours, err := readRaftMeta(ctx, db.read)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// A file of the same cluster at the snapshot's index holds it already;
	// a new file (at 0), one of another cluster or one that diverged takes
	// the snapshot.
	if ours.cluster == theirs.cluster && ours.applied >= theirs.applied && ours.applied > 0 && !db.diverged.Load() {
		db.logger.Info("snapshot not restored: the file is as new", "applied_index", ours.applied, "snapshot_index", theirs.applied)
		return nil
	}
	if err := db.backupFrom(ctx, src); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db.diverged.Store(false)
	if err := db.loadUsage(ctx); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db.notifyReset()
	db.logger.Info("snapshot restored", "applied_index", theirs.applied, "cluster", theirs.cluster, "was", ours.applied)
	return nil
}

// backupFrom copies src over the database through the write connection.
func (db *DB) backupFrom(ctx context.Context, src *sql.DB) error {
	sc, err := src.Conn(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	dc, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	return sc.Raw(func(s any) error {
		return dc.Raw(func(d any) error {
			b, err := d.(*sqlite3.SQLiteConn).Backup("main", s.(*sqlite3.SQLiteConn), "main")
			if err != nil {
				return err
			}
			if _, err := b.Step(-1); err != nil {
				_ = b.Finish()
				return err
			}
			return b.Finish()
		})
	})
}

// tempFile makes an empty owner-only file beside the database.
func (db *DB) tempFile(what string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(db.path), "."+filepath.Base(db.path)+"."+what+"-*")
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return f.Name(), f.Close()
}

// replication is the replicated registry's state in DB.
type replication struct {
	proposer      Proposer
	diverged      atomic.Bool
	onDiverge     func()
	schemaVersion uint
}
