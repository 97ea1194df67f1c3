DROP TABLE raft_meta;
