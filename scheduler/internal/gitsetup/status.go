package gitsetup

import (
	"encoding/json"
	"time"
)

// MetadataKey is where a workspace's metadata (WorkspaceInfo.metadata in
// the compute API) holds its git setup: a Status.
const MetadataKey = "git_setup"

// State is where a setup is.
type State string

// The states of a setup.
const (
	StatePending State = "pending" // due: recorded when the container was started
	StateRunning State = "running"
	StateDone    State = "done"   // identity set, credentials stored, every repo cloned or present
	StateFailed  State = "failed" // the configuration or at least one repo failed (see their reasons)
)

// RepoState is where one repo is.
type RepoState string

// The states of a repo.
const (
	RepoPending RepoState = "pending"
	RepoCloning RepoState = "cloning"
	RepoCloned  RepoState = "cloned"
	RepoPresent RepoState = "present" // its directory already held a clone, left as it was
	RepoFailed  RepoState = "failed"
)

// Credentials tells what became of git_credentials (never their value).
type Credentials string

// What became of git_credentials.
const (
	CredentialsNone    Credentials = "none"    // none given (berth's store file is removed)
	CredentialsStored  Credentials = "stored"  // written to StorePath
	CredentialsUnused  Credentials = "unused"  // given, but no repo is an http(s) URL to use them for
	CredentialsInvalid Credentials = "invalid" // ErrInvalidCredentials: the usable lines were stored
)

// Status is metadata.git_setup.
type Status struct {
	State State `json:"status"`
	// Run counts the setups of the workspace: each start of a container
	// (create, restart, move) is one. A setup only writes its own run.
	Run         int          `json:"run"`
	Branch      string       `json:"branch,omitempty"`
	Credentials Credentials  `json:"credentials,omitempty"`
	Reason      Reason       `json:"reason,omitempty"` // why the configuration failed
	Error       string       `json:"error,omitempty"`
	Repos       []RepoStatus `json:"repos"`
	RequestedAt time.Time    `json:"requested_at"`
	StartedAt   time.Time    `json:"started_at,omitzero"`
	FinishedAt  time.Time    `json:"finished_at,omitzero"`
}

// RepoStatus is one repo of a Status.
type RepoStatus struct {
	URL     string    `json:"url"` // as berth clones it: without user info
	Dir     string    `json:"dir,omitempty"`
	State   RepoState `json:"status"`
	Reason  Reason    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"` // git's message, redacted
	Seconds float64   `json:"seconds,omitempty"`
}

// StatusOf reads the setup status in a workspace's metadata; false when
// there is none (or it does not read as one).
func StatusOf(meta map[string]any) (Status, bool) {
	v, ok := meta[MetadataKey]
	if !ok {
		return Status{}, false
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return Status{}, false
	}
	var s Status
	if err := json.Unmarshal(raw, &s); err != nil || s.State == "" {
		return Status{}, false
	}
	return s, true
}

// put writes s into meta (which must not be nil) as the registry stores
// it: plain JSON values.
func (s Status) put(meta map[string]any) {
	raw, err := json.Marshal(s)
	if err != nil {
		panic("gitsetup: status does not encode: " + err.Error()) // only strings, numbers and times
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		panic("gitsetup: status does not decode: " + err.Error())
	}
	meta[MetadataKey] = v
}

// due reports whether s is a setup to run: pending, or running when the
// scheduler stopped.
func (s Status) due() bool { return s.State == StatePending || s.State == StateRunning }

// newStatus is the pending status of run for p: every repo pending, or
// failed at once when berth refuses it.
func newStatus(p Plan, run int, at time.Time) Status {
	s := Status{State: StatePending, Run: run, Branch: p.Branch, Repos: []RepoStatus{}, RequestedAt: at.UTC()}
	for _, e := range p.Repos {
		r := RepoStatus{URL: e.Shown, Dir: e.Dir, State: RepoPending}
		if e.Err != nil {
			r.State, r.Reason, r.Error = RepoFailed, reasonOf(e.Err), e.Err.Error()
		}
		s.Repos = append(s.Repos, r)
	}
	return s
}
