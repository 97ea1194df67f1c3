package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The registry as a raft state machine, and the proposer that writes
// through a *raft.Raft. Package cluster runs the raft node; see
// replicate.go for how writes flow.

// FSM returns the raft state machine that applies commands to db.
func (db *DB) FSM() raft.FSM { return fsm{db} }

type fsm struct{ db *DB }

// Apply applies a command entry; it returns nil or the error (raft hands
// it to the proposer's future).
func (f fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if err := f.db.ApplyCommand(l.Index, l.Term, l.Data); err != nil {
		return err
	}
	return nil
}

// Snapshot returns at once; Persist copies the file (see WriteSnapshot).
func (f fsm) Snapshot() (raft.FSMSnapshot, error) { return snapshot(f), nil }

// Restore replaces the file with a snapshot (see RestoreSnapshot).
func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.db.RestoreSnapshot(context.Background(), rc)
}

type snapshot struct{ db *DB }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.db.WriteSnapshot(context.Background(), sink); err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

func (snapshot) Release() {}

// CompactToSnapshot snapshots the file and drops the whole log before it,
// so that a scheduler that joins later is sent the file itself (raft's
// InstallSnapshot) before any entry: its own file, made by its own
// migrations, is replaced. The bootstrapping scheduler calls it once it
// leads; its file may hold a registry from before raft.
func CompactToSnapshot(r *raft.Raft) error {
	// A barrier applies everything so far and gives the snapshot an index
	// to stand at.
	if err := r.Barrier(time.Minute).Error(); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	conf := r.ReloadableConfig()
	trailing := conf
	trailing.TrailingLogs = 0
	if err := r.ReloadConfig(trailing); err != nil {
		return err
	}
	defer func() { _ = r.ReloadConfig(conf) }()
	if err := r.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// RaftProposer proposes commands through r; timeout bounds the wait to
// enqueue an entry and a new leader's barrier (a committed entry's apply is
// waited for in full: the writer must learn its fate).
func RaftProposer(r *raft.Raft, timeout time.Duration) Proposer {
	return &raftProposer{r: r, timeout: timeout}
}

type raftProposer struct {
	r       *raft.Raft
	timeout time.Duration
	ready   atomic.Uint64 // the term whose barrier completed
}

func (p *raftProposer) Lead() (uint64, error) {
	if p.r.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	term := p.r.CurrentTerm()
	if p.ready.Load() == term {
		return term, nil
	}
	if err := p.r.Barrier(p.timeout).Error(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	if p.r.CurrentTerm() != term {
		return 0, ErrNotLeader
	}
	p.ready.Store(term)
	return term, nil
}

func (p *raftProposer) Propose(data []byte) error {
	f := p.r.Apply(data, p.timeout)
	if err := f.Error(); err != nil {
		p.ready.Store(0)
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrAbortedByRestore):
			return fmt.Errorf("%w: not written: %w", ErrNotLeader, err) // refused before it was appended
		}
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		p.ready.Store(0)
		return err
	}
	return nil
}
