DROP INDEX workspaces_server_created;
DROP INDEX workspaces_created;
