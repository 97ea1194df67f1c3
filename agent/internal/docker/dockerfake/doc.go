// Package dockerfake is an in-memory Docker daemon behind the agent's
// adapter surface: it implements the Docker interface of the agent's API
// (agent/internal/server), and the fence's and capacity sampler's, with no
// daemon at all. It is what agent/agenttest runs the real agent API over,
// for the server's own unit tests and the scheduler's tests.
//
// It keeps containers (labels, state, limits, epoch label, created, started
// and finished times), images and the data paths removed, and emits the
// container events a real daemon would (create, start, kill, die with the
// exit code, stop, oom, destroy) to every subscriber of Events. Exec runs
// nothing: it answers from a hook (by default it echoes the command line on
// stdout and exits 0); a hook set with SetExecIO reads the exec's input as
// a stream, one set with SetExec finds it whole in the request. ExecTTY runs a TTY hook on a Terminal (by default an
// echo: what is written is read back) that records its sizes; stopping the
// container ends it with exit 137. Address answers 127.0.0.1 (SetAddress
// changes it), so the agent's proxy reaches a server the test runs. Stats
// and Info are fixed, plausible figures.
//
// It decides what a request may ask for with the adapter's own validators
// (docker.ValidateCreate and friends, checked against DataDir) and answers
// with the adapter's sentinel errors, so the API maps its failures exactly
// as it maps the real adapter's. What needs a real host is not imitated:
// symlinks below the data directory, images are present unless
// RequireImages is on, and every data path exists.
//
// Failure knobs: FailCreate / FailNextCreate, FailUpdate, FailPull, and
// SetDown, which makes it behave like an unreachable dockerd (Ping and every
// call fail with docker.ErrDocker, open event streams end with an error).
// Exit and OOM make a container end on its own, as a crash would.
//
// A Fake is safe for concurrent use. Events never block the caller: each
// subscriber has its own queue and goroutine, which ends when the
// subscriber's context ends or the fake goes down.
package dockerfake
