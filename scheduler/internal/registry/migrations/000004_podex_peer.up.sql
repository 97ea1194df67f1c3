-- The podex API as a peer: the servers its list names, and compute billing
-- with a durable outbox (see billing.go and apiservers.go).

-- Servers the podex API's list (GET /api/servers/internal/list) has named.
-- listed: the last list named it. cordoned_by_sync: the sync cordoned it
-- because a list stopped naming it, so a later list that names it again
-- makes it active again; an operator's state change clears it.
CREATE TABLE api_servers (
    server_id        TEXT    NOT NULL PRIMARY KEY REFERENCES servers (id) ON DELETE CASCADE,
    listed           INTEGER NOT NULL DEFAULT 1 CHECK (listed IN (0, 1)),
    cordoned_by_sync INTEGER NOT NULL DEFAULT 0 CHECK (cordoned_by_sync IN (0, 1)),
    first_listed_at  TEXT    NOT NULL,
    last_listed_at   TEXT    NOT NULL
) STRICT;

-- Whether compute time is billed (the scheduler runs with the podex API).
-- One row; every workspace write reads it in its own transaction.
CREATE TABLE billing_state (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at TEXT    NOT NULL
) STRICT;
INSERT INTO billing_state (id, enabled, updated_at) VALUES (1, 0, strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z');

-- The open billing interval of each running workspace: its compute time
-- from since on is not yet in the outbox. A mark moves only in the
-- transaction that writes the outbox row of the time before it. No foreign
-- key: the transaction that deletes a workspace row closes its interval
-- first.
CREATE TABLE billing_marks (
    workspace_id TEXT NOT NULL PRIMARY KEY CHECK (workspace_id <> ''),
    user_id      TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    tier         TEXT NOT NULL,
    server_id    TEXT NOT NULL,
    container_id TEXT NOT NULL,
    since        TEXT NOT NULL
) STRICT;

CREATE INDEX billing_marks_since ON billing_marks (since);

-- Closed intervals, each one usage event of POST /api/billing/usage/record
-- with the id it keeps for every retry. sent_at NULL = not yet acknowledged.
CREATE TABLE billing_outbox (
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE CHECK (event_id <> '' AND event_id NOT GLOB '*[^a-zA-Z0-9_-]*'),
    user_id         TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    workspace_id    TEXT    NOT NULL,
    tier            TEXT    NOT NULL,
    server_id       TEXT    NOT NULL,
    container_id    TEXT    NOT NULL,
    started_at      TEXT    NOT NULL,
    ended_at        TEXT    NOT NULL,
    seconds         INTEGER NOT NULL CHECK (seconds > 0),
    reason          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    solo            INTEGER NOT NULL DEFAULT 0 CHECK (solo IN (0, 1)),
    last_error      TEXT    NOT NULL DEFAULT '',
    sent_at         TEXT
) STRICT;

CREATE INDEX billing_outbox_due ON billing_outbox (next_attempt_at, seq) WHERE sent_at IS NULL;
CREATE INDEX billing_outbox_sent ON billing_outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX billing_outbox_workspace ON billing_outbox (workspace_id, seq);
