// Package secretbox seals the small secrets the registry keeps (a
// workspace's git credentials) so that the SQLite file, its backups and its
// WAL never hold them in clear: AES-256-GCM under a key kept in its own file
// (by default beside the database, mode 600), bound to what the secret
// belongs to (the workspace id), so that a sealed value copied to another
// row does not open. The registry calls it through registry.Sealer; the
// app loads the key at start.
package secretbox
