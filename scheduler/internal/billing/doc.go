// Package billing records the compute time of every running workspace as
// compute_seconds usage events of the podex API
// (POST /api/billing/usage/record), exactly once: no second of running
// time is lost or billed twice, whatever instant the scheduler is killed
// at. It runs only with the podex API (COMPUTE_API_BASE_URL).
//
// # Marks, intervals and the outbox
//
// The state lives in the registry (registry/billing.go), never in memory:
//
//   - A billing mark per running workspace: the start of its open
//     interval, with the user, session, tier, server and container it is
//     billed for.
//   - The outbox: closed intervals, each a usage event with its id —
//     "cs-" and 128 random bits, made once when the row is written — its
//     whole seconds, its start and end, why it was closed, and its sending
//     state (attempts, next attempt, last error, when acknowledged).
//
// Every write of a workspace row (insert, update, status change, move,
// delete) moves the workspace's mark in the same SQLite transaction
// (registry.billTx): a row that becomes running opens a mark; a row that
// stops running (stopped, error — server_lost included — pending_deletion,
// creating again for a move) or is deleted closes the interval into the
// outbox and drops the mark; a running row whose tier changes (scale) or
// that gets another server or container closes the interval and opens the
// next one. The time of the change is the moment it happened: the agent's
// event time for a container that died or started (ContainerEvent), the
// time the server went down for server_lost, the moment of the registry
// write for what berth itself does (stop, delete, scale, restart). A time
// before the mark or after now is clamped to them.
//
// Service.Run closes, every Tick, the intervals that reached Interval
// (default 60 s; the Python service used 600 s) in one transaction: an
// outbox row per interval and the marks moved by the same seconds.
//
// # Whole seconds
//
// An interval bills the whole seconds between its mark and its end; the
// mark then moves by exactly those seconds, so the fraction is carried
// into the next interval, never dropped and never billed twice. A tier
// change's new interval starts where the old one's billed seconds end. Only
// when the workspace stops running is the last fraction (< 1 s) dropped: a
// run of 125.9 s is billed 125 s, in one or many events.
//
// # Why exactly once
//
//   - No loss: an interval leaves its mark only in the transaction that
//     writes its outbox row (WAL, synchronous=FULL). A process killed before
//     the commit left neither: after a restart the mark is where it was and
//     the next close covers the same time. A killed scheduler leaves the
//     marks of running workspaces in place; StartBilling at the next start
//     keeps them, so the open interval goes on from its mark and the time
//     the scheduler was down is billed (the containers ran).
//   - No double count: a second belongs to one interval, and an interval
//     to one outbox row, whose id never changes. Rows are sent until the API
//     answers 2xx and are then marked acknowledged; a process killed after
//     the API took a batch but before the mark sends the same ids again, and
//     the API de-duplicates on user_id:id.
//
// # Sending
//
// Flush sends the due rows, oldest first, in batches of BatchSize, every
// FlushInterval and as soon as intervals were closed. When the API cannot
// be reached (after the client's own tries) the rows wait for their next
// attempt — RetryBase doubling per failure up to RetryMax, with jitter —
// and the flush stops. A batch the API refuses (4xx) is sent again one
// event per request, so a bad event holds up only itself; it is retried
// until the API takes it, and the admin panel shows it. Acknowledged rows
// are kept for Retention (the admin billing view) and then deleted; rows
// not acknowledged are never deleted.
//
// Without the podex API the scheduler turns billing off (StopBilling):
// no marks, nothing recorded; the outbox keeps what it holds.
package billing
