-- Workspace lists in their order (created_at, id), paged by key
-- (ListWorkspaces with Limit and After): a page is read from the index, in
-- order, without sorting or skipping the rows before it. One index for the
-- whole fleet, one for the workspaces of a server (the admin views).
CREATE INDEX workspaces_created ON workspaces (created_at, id);
CREATE INDEX workspaces_server_created ON workspaces (server_id, created_at, id);
