package wire

// PathEventLog is the agent's log of the latest container events of its
// berth containers: GET PathEventLog?after=N answers EventLog with the
// events numbered after N. The agent publishes the number of its latest
// event (NodeMeta.EventSeq in its gossip metadata, Health.EventSeq in its
// health answer), so the scheduler fetches events only when that number
// moves instead of holding a stream open per agent (PathEvents, which
// agents still serve).
const PathEventLog = "/v1/events/log"

// QueryAfter is PathEventLog's cursor parameter.
const QueryAfter = "after"

// EventLog is the answer on PathEventLog.
//
// Event numbers grow by one per event from a base the agent picks at
// start (its start time in microseconds), so a number from an earlier run
// of the agent is below every number of the current one. When the events
// after the caller's cursor are not all known — the agent restarted, the
// cursor fell out of the log, Docker's event stream broke and was
// re-opened, or the cursor is 0 (a first call) — Reset is set and Events is
// empty: the caller must compare its records with the containers (as after
// opening PathEvents) and continue from Seq.
type EventLog struct {
	Seq    uint64           `json:"seq"` // the number of the latest event: the next cursor
	Reset  bool             `json:"reset,omitempty"`
	Events []ContainerEvent `json:"events"` // in order, the last one numbered Seq
}
