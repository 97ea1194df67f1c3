// Package gitsetup prepares git in a workspace once its container runs: it
// sets the identity (git_name, git_email), hands git_credentials to git
// through a credential store file, and clones each of the create's repos
// into /home/dev/<name> on git_branch.
//
// Where it sits in the flow: the orchestrator records, in the same write
// that marks a freshly made or restarted container running, that a setup
// is due (Service.Pending: metadata.git_setup, status "pending"), then
// tells the Service (Launched). Run works through due setups in the
// background, a few at a time, each bounded by Config.Timeout, through the
// orchestrator's platform exec (as the user dev, never counted as the
// user's activity). Progress and the outcome of every repo are written to
// metadata.git_setup and recorded as workspace events (git.setup.started,
// git.repo.cloned / .present / .failed, git.setup.finished). A failed
// clone never fails the create; the reason says why (reasons.go).
//
// Secrets: the credentials are read from the registry's credentials table
// for each setup and reach the container only on the standard input of an
// exec, which writes them into the store file (mode 600, owned by dev).
// They are never in a command line, an environment variable, a log line,
// an event or the metadata; git's error output is redacted before it is
// kept (credentials.go). In the registry they are sealed (secretbox).
//
// The scripts (scripts.go) are idempotent: a repo whose directory already
// holds a clone is left alone ("present"), a clone is made in a hidden
// temporary directory and renamed into place only when complete, and
// leftovers of an interrupted clone are removed by the next attempt. So a
// restart, or a scheduler that resumes the setups it found unfinished at
// start, re-runs a setup safely.
package gitsetup
