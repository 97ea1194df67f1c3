-- A replicated registry's state (replicate.go): the raft entry it applied
-- last, written in the same transaction as the entry (0 on a file that was
-- never replicated); the cluster it belongs to (set when a scheduler
-- bootstraps one; a snapshot of another cluster is always restored); and
-- whether it stopped applying because an entry did not apply as on the
-- leader (it must then be wiped and rejoin).
CREATE TABLE raft_meta (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    applied_index INTEGER NOT NULL,
    applied_term  INTEGER NOT NULL,
    cluster_id    TEXT    NOT NULL,
    diverged      TEXT    NOT NULL
);
INSERT INTO raft_meta (id, applied_index, applied_term, cluster_id, diverged) VALUES (1, 0, 0, '', '');
