DROP TABLE events;
DROP TABLE workspaces;
DROP TABLE servers;
