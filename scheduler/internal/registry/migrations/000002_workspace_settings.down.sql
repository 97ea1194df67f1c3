-- Back to the config blob: config is rebuilt from the settings and the git
-- credentials (the other keys of the original request are gone), and the
-- acknowledgement time goes back into metadata.acknowledged_at (the
-- registry's layout is RFC 3339).
ALTER TABLE workspaces ADD COLUMN config TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config));

UPDATE workspaces SET config = coalesce(
    (SELECT json_set(workspaces.settings, '$.git_credentials', c.git)
     FROM workspace_credentials AS c WHERE c.workspace_id = workspaces.id),
    settings);

UPDATE workspaces SET metadata = json_set(metadata, '$.acknowledged_at', acknowledged_at)
WHERE acknowledged_at IS NOT NULL;

ALTER TABLE workspaces DROP COLUMN acknowledged_at;
ALTER TABLE workspaces DROP COLUMN settings;
DROP TABLE workspace_credentials;
