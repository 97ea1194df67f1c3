package wire

// Labels put on every workspace container. The podex.* labels are the ones the
// Python compute service used (contract §9.2), kept so existing containers are
// re-adopted on cutover; berth.* labels are berth's own.
const (
	LabelPodexWorkspace = "podex.workspace" // "true"
	LabelWorkspaceID    = "podex.workspace_id"
	LabelUserID         = "podex.user_id"
	LabelSessionID      = "podex.session_id"
	LabelTier           = "podex.tier"

	LabelManaged  = "berth.managed" // "true" on everything berth creates
	LabelServerID = "berth.server_id"
	LabelEpoch    = "berth.epoch"   // fencing epoch of the placement that created it
	LabelCluster  = "berth.cluster" // id of the scheduler's cluster that owns it
)

// Roles of berth certificates: bound by the URI SAN mtls.RoleURI (spiffe://berth/agent,
// spiffe://berth/scheduler); also written, for people only, in the OU.
const (
	RoleScheduler = "berth-scheduler"
	RoleAgent     = "berth-agent"
)
