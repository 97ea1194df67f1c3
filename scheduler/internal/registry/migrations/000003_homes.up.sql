-- Where each workspace's home directory lives, and whose it is.
--
-- A home outlives its workspace record: DELETE /workspaces/{id} keeps the
-- data (contract §3.6), and the podex API re-creates the same id when the
-- user comes back. The row binds the id to its owner until the data is
-- removed (mark-for-deletion and the cleanup), and says on which server the
-- data is, so that placement can go back there or move the data along.
--
-- server_id NULL: the server holding the data was removed from the registry;
-- the data is gone for good and the next container starts with an empty home.
-- moving_to: the server a move is copying the data to; the data on server_id
-- stays the live copy until the copy is verified.
-- purge: the owner asked for the data to be removed (mark-for-deletion of an
-- id whose record is already deleted); the cleanup loop does it.
CREATE TABLE homes (
    workspace_id TEXT    NOT NULL PRIMARY KEY CHECK (workspace_id <> ''),
    user_id      TEXT    NOT NULL,
    server_id    TEXT    REFERENCES servers (id) ON DELETE SET NULL,
    moving_to    TEXT    REFERENCES servers (id) ON DELETE SET NULL,
    purge        INTEGER NOT NULL DEFAULT 0 CHECK (purge IN (0, 1)),
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
) STRICT;

CREATE INDEX homes_server_id ON homes (server_id);

-- Old copies of homes left on a server after a move, removed by the cleanup
-- loop once that server answers. A copy is listed here only after the new
-- copy was verified.
CREATE TABLE home_leftovers (
    workspace_id TEXT NOT NULL,
    server_id    TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, server_id)
) STRICT;

-- Every placed workspace has its home on its server.
INSERT INTO homes (workspace_id, user_id, server_id, created_at, updated_at)
SELECT id, user_id, server_id, created_at, updated_at FROM workspaces WHERE server_id IS NOT NULL;
