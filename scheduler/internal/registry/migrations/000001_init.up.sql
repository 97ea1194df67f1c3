-- Servers the scheduler may place workspaces on.
-- total_* are admin capacity overrides (0 = use the capacity the agent measures),
-- max_workspaces 0 = unlimited, used_* / active_workspaces the last reported usage.
-- seq keeps registration order (rowids of a table without an INTEGER PRIMARY KEY
-- may change on VACUUM). placement_epoch is bumped by every placement on the server.
CREATE TABLE servers (
    id                    TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    seq                   INTEGER NOT NULL UNIQUE,
    name                  TEXT    NOT NULL UNIQUE CHECK (name <> ''),
    hostname              TEXT    NOT NULL DEFAULT '',
    ip_address            TEXT    NOT NULL DEFAULT '',
    agent_port            INTEGER NOT NULL DEFAULT 0 CHECK (agent_port BETWEEN 0 AND 65535),
    architecture          TEXT    NOT NULL DEFAULT '',
    region                TEXT    NOT NULL DEFAULT '',
    labels                TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    tls_cert_path         TEXT,
    tls_key_path          TEXT,
    tls_ca_path           TEXT,
    total_cpu             REAL    NOT NULL DEFAULT 0 CHECK (total_cpu >= 0),
    total_memory_mb       INTEGER NOT NULL DEFAULT 0 CHECK (total_memory_mb >= 0),
    total_disk_gb         INTEGER NOT NULL DEFAULT 0 CHECK (total_disk_gb >= 0),
    total_bandwidth_mbps  INTEGER NOT NULL DEFAULT 0 CHECK (total_bandwidth_mbps >= 0),
    max_workspaces        INTEGER NOT NULL DEFAULT 0 CHECK (max_workspaces >= 0),
    gpu_type              TEXT,
    gpu_count             INTEGER NOT NULL DEFAULT 0 CHECK (gpu_count >= 0),
    workspace_image       TEXT,
    workspace_image_arm64 TEXT,
    workspace_image_amd64 TEXT,
    workspace_image_gpu   TEXT,
    state                 TEXT    NOT NULL DEFAULT 'active'
                          CHECK (state IN ('active', 'draining', 'cordoned')),
    health                TEXT    NOT NULL DEFAULT 'unknown'
                          CHECK (health IN ('healthy', 'degraded', 'unhealthy', 'unreachable', 'unknown')),
    last_health_check     TEXT,
    last_error            TEXT,
    used_cpu              REAL    NOT NULL DEFAULT 0,
    used_memory_mb        INTEGER NOT NULL DEFAULT 0,
    used_disk_gb          INTEGER NOT NULL DEFAULT 0,
    active_workspaces     INTEGER NOT NULL DEFAULT 0,
    usage_reported_at     TEXT,
    placement_epoch       INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL
) STRICT;

-- Workspaces: every WorkspaceInfo field of the compute API (contract §5.2) plus
-- the placement: the reservation (res_*) held on server_id and the fencing epoch.
CREATE TABLE workspaces (
    id                 TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id            TEXT    NOT NULL,
    session_id         TEXT    NOT NULL DEFAULT '',
    status             TEXT    NOT NULL
                       CHECK (status IN ('creating', 'running', 'stopping', 'stopped', 'error', 'pending_deletion')),
    status_reason      TEXT    NOT NULL DEFAULT '',
    tier               TEXT    NOT NULL DEFAULT '',
    host               TEXT    NOT NULL DEFAULT '',
    port               INTEGER NOT NULL DEFAULT 8080,
    server_id          TEXT    REFERENCES servers (id) ON DELETE RESTRICT,
    container_id       TEXT,
    repos              TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(repos) AND json_type(repos) = 'array'),
    created_at         TEXT    NOT NULL,
    last_activity      TEXT    NOT NULL,
    metadata           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    auth_token         TEXT,
    image              TEXT,
    repositories       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(repositories) AND json_type(repositories) = 'array'),
    environment        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(environment) AND json_type(environment) = 'object'),
    config             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    res_cpu            REAL    NOT NULL DEFAULT 0 CHECK (res_cpu >= 0),
    res_memory_mb      INTEGER NOT NULL DEFAULT 0 CHECK (res_memory_mb >= 0),
    res_disk_gb        INTEGER NOT NULL DEFAULT 0 CHECK (res_disk_gb >= 0),
    res_bandwidth_mbps INTEGER NOT NULL DEFAULT 0 CHECK (res_bandwidth_mbps >= 0),
    res_gpu_count      INTEGER NOT NULL DEFAULT 0 CHECK (res_gpu_count >= 0),
    epoch              INTEGER NOT NULL DEFAULT 0,
    updated_at         TEXT    NOT NULL
) STRICT;

CREATE INDEX workspaces_user_id ON workspaces (user_id);
CREATE INDEX workspaces_session_id ON workspaces (session_id);
-- Covers the reservation sums: ReserveAndInsert reads them from this index alone.
CREATE INDEX workspaces_server_id ON workspaces (server_id, res_cpu, res_memory_mb, res_disk_gb, res_bandwidth_mbps, res_gpu_count);
CREATE INDEX workspaces_status ON workspaces (status);

-- Event log. No foreign keys: events outlive the servers and workspaces they name.
CREATE TABLE events (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at           TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind <> ''),
    server_id    TEXT,
    workspace_id TEXT,
    message      TEXT    NOT NULL DEFAULT '',
    data         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data))
) STRICT;

CREATE INDEX events_server_id ON events (server_id, id);
CREATE INDEX events_workspace_id ON events (workspace_id, id);
CREATE INDEX events_at ON events (at);
