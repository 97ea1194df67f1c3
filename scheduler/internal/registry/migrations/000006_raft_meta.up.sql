-- The raft entry a replicated registry has applied last (replicate.go),
-- written in the same transaction as the entry. 0 on a file that was never
-- replicated.
CREATE TABLE raft_meta (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    applied_index INTEGER NOT NULL,
    applied_term  INTEGER NOT NULL
);
INSERT INTO raft_meta (id, applied_index, applied_term) VALUES (1, 0, 0);
