-- Typed create options and secrets kept apart.
--
-- Before: workspaces.config held the create request's config JSON as sent,
-- git_credentials included, and the orchestrator kept its acknowledgement
-- time in metadata.acknowledged_at, a key the users see.
-- After:  workspaces.settings holds only the options a workspace keeps
-- (git_branch, git_name, git_email, base_image, region_preference; string
-- values, empty ones left out), workspace_credentials holds the git
-- credentials, and workspaces.acknowledged_at the acknowledgement time in
-- the registry's time layout (UTC, microseconds).

-- Freed pages are zeroed: the credentials must not linger in the file once
-- the config column is dropped.
PRAGMA secure_delete = ON;

-- A workspace's secrets. Read only by GetCredentials, never listed; the row
-- goes with its workspace (foreign keys are on in every connection).
CREATE TABLE workspace_credentials (
    workspace_id TEXT NOT NULL PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    git          TEXT NOT NULL
) STRICT;

INSERT INTO workspace_credentials (workspace_id, git)
SELECT id, json_extract(config, '$.git_credentials')
FROM workspaces
WHERE json_type(config, '$.git_credentials') = 'text' AND json_extract(config, '$.git_credentials') <> '';

ALTER TABLE workspaces ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(settings) AND json_type(settings) = 'object');

-- json_each of a config that is not an object yields no settings key.
UPDATE workspaces SET settings = (
    SELECT json_group_object(key, value) FROM json_each(workspaces.config)
    WHERE key IN ('git_branch', 'git_name', 'git_email', 'base_image', 'region_preference')
        AND type = 'text' AND value <> ''
);

ALTER TABLE workspaces DROP COLUMN config;

-- NULL = never acknowledged.
ALTER TABLE workspaces ADD COLUMN acknowledged_at TEXT;

-- metadata.acknowledged_at was written as RFC 3339 ("2006-01-02T15:04:05Z07:00",
-- optionally with a fraction of a second). It becomes the registry's layout
-- "2006-01-02T15:04:05.000000Z": strftime converts the whole seconds to UTC
-- (it is given the time without its fraction, so it cannot round up a
-- second), and the fraction, which no zone offset changes, is copied as text,
-- cut or padded to six digits. A value present that is not such a string
-- (and not null or false) still means the create was answered: the row gets
-- its created_at, so it is never dropped as an interrupted create.
UPDATE workspaces SET acknowledged_at = conv.at
FROM (
    SELECT id,
        CASE
            WHEN zp > 0
                AND head GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]'
                AND (zp = 1 OR (substr(rest, 1, 1) = '.' AND zp > 2 AND frac NOT GLOB '*[^0-9]*'))
                AND (zone = 'Z' OR zone GLOB '[+-][0-9][0-9]:[0-9][0-9]')
                AND strftime('%Y-%m-%dT%H:%M:%S', head || zone) IS NOT NULL
            THEN strftime('%Y-%m-%dT%H:%M:%S', head || zone) || '.' || substr(frac || '000000', 1, 6) || 'Z'
            ELSE created_at
        END AS at
    FROM (
        SELECT id, created_at, head, rest, zp,
            CASE WHEN zp > 1 THEN substr(rest, 2, zp - 2) ELSE '' END AS frac,
            substr(rest, zp) AS zone
        FROM (
            SELECT id, created_at, head, rest,
                max(instr(rest, 'Z'), instr(rest, '+'), instr(rest, '-')) AS zp
            FROM (
                SELECT id, created_at,
                    CASE WHEN typ = 'text' THEN substr(ts, 1, 19) ELSE '' END AS head,
                    CASE WHEN typ = 'text' THEN substr(ts, 20) ELSE '' END AS rest
                FROM (
                    SELECT id, created_at, json_extract(metadata, '$.acknowledged_at') AS ts,
                        json_type(metadata, '$.acknowledged_at') AS typ
                    FROM workspaces
                )
                WHERE typ NOT IN ('null', 'false')
            )
        )
    )
) AS conv
WHERE workspaces.id = conv.id;

UPDATE workspaces SET metadata = json_remove(metadata, '$.acknowledged_at')
WHERE json_type(metadata, '$.acknowledged_at') IS NOT NULL;
