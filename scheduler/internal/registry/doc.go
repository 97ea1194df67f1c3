// Package registry is the scheduler's state: the servers it may place on, the
// workspaces it has placed, the reservations they hold and an event log. It
// keeps them in one SQLite file and is the only package that imports
// database/sql.
//
// # Where it sits
//
// Every flow of the scheduler reads or writes here. The create flow calls
// ReserveAndInsert after placement has ranked the candidates: one write
// transaction checks the chosen server's room, reserves the request, assigns
// the placement's fencing epoch and inserts the workspace as "creating",
// with its Settings in the row and its Credentials beside it. The
// orchestrator then drives the agent and records the outcome with
// UpdateWorkspace or SetWorkspaceStatus, and sets AcknowledgedAt once the
// create is answered; on an agent failure it deletes the row (which releases
// the reservation) and tries the next candidate. Health writes
// server health and reported usage; the compute and admin APIs read and edit
// servers and workspaces.
//
// # Reservations
//
// A workspace row that names a server holds a reservation of CPU, memory,
// disk, bandwidth and GPUs on that server, and counts towards the server's
// workspace limit, until the row is deleted or moved (MoveWorkspace). The
// status does not matter: a stopped workspace keeps its reservation, so a
// restart on the same host always has room. There is no reservation counter:
// the reserved amount of a server is always the SUM over its workspace rows,
// computed inside the transaction that checks it, so it cannot drift.
//
// The limits a reservation is checked against are passed by the caller
// (Limits): the orchestrator knows the effective capacity (admin overrides or
// the agent's measured capacity). A limit of 0 means unlimited.
//
// # Secrets
//
// A workspace keeps only typed create options (Settings) in its row, never
// the create request as sent. Its git credentials are in a table of their
// own, written by ReserveAndInsert in the same transaction as the row and
// read only by GetCredentials: GetWorkspace and ListWorkspaces never return
// them. The credentials row references the workspace row with ON DELETE
// CASCADE (foreign keys are on in every connection, and Open checks it), so
// deleting a workspace deletes its credentials. Environment values and the
// auth token are in the row; the file is created owner-only.
//
// # Billing
//
// With the podex API (StartBilling; StopBilling turns it off), every write
// of a workspace row moves the workspace's billing mark in the same
// transaction (billTx): a row that starts running opens an interval, one
// that stops running or is deleted closes it into the outbox, one whose
// tier, server or container changes closes it and opens the next. The
// time of the change is the write's (UpdatedAt), or the one the caller
// passes (SetWorkspaceStatusAt: an agent's event time, the time a server
// went down). CloseDueIntervals closes the intervals that reached their
// length. An outbox row is written only with the move of its mark, so no
// second is lost or counted twice whatever instant the process dies at;
// its event id is random, made once, and sent with every retry
// (DueUsage, MarkUsageSent, MarkUsageFailed). Package billing drives it and
// tells the whole story.
//
// # Servers from the podex API
//
// SyncAPIServers applies one answer of the podex API's server list in one
// transaction: new servers registered, the fields the list carries updated,
// servers an earlier list named and this one does not cordoned (never
// deleted), and active again when listed again unless an operator changed
// their state meanwhile (api_servers remembers which servers the list
// named and which cordons it made).
//
// # Durability and concurrency
//
// The database runs in WAL mode with synchronous=FULL, so a transaction that
// returned is on disk. All writes go through one connection that begins
// transactions with BEGIN IMMEDIATE: writers are serialised, even across
// processes sharing the file (busy timeout), and a read-check-write
// transaction such as ReserveAndInsert can never interleave with another
// writer, so concurrent creates cannot overcommit a server. Reads use a
// separate read-only pool and see the last committed state.
//
// DB is safe for concurrent use by multiple goroutines.
//
// # Values
//
// Times are stored as UTC text with microsecond precision
// ("2006-01-02T15:04:05.000000Z"); a time read back equals the time written,
// truncated to the microsecond and in UTC. A zero time.Time stands for NULL
// where a column is nullable (acknowledged_at, last_health_check, ...).
// Nullable text columns (server_id, container_id, image, auth_token, TLS
// paths, images, gpu_type, last_error) map to "" in Go.
// JSON columns are read back as non-nil empty slices and maps when empty.
//
// The schema is versioned with golang-migrate; the numbered SQL files in
// migrations/ are applied by Open.
package registry
