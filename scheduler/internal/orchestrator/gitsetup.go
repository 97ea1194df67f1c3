package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// GitSetup is the git setup of workspaces (gitsetup.Service): the clone
// of their repos, their git identity and credentials, done in the
// background once their container runs.
type GitSetup interface {
	// Pending records in w, inside the write that marks a started
	// container running, that a setup is due. No I/O.
	Pending(w *registry.Workspace)
	// Launched hands over the workspace as stored after that write. It
	// never blocks.
	Launched(ws registry.Workspace)
}

// gitPendingLocked marks a setup due in a row being written as running
// (create, move, restart). The caller holds the workspace's lock.
func (c *core) gitPendingLocked(w *registry.Workspace) {
	if c.GitSetup != nil && w.Status == fleet.StatusRunning {
		c.GitSetup.Pending(w)
	}
}

// gitLaunched hands a workspace whose container was started to the git
// setup.
func (c *core) gitLaunched(ws registry.Workspace) {
	if c.GitSetup != nil && ws.Status == fleet.StatusRunning {
		c.GitSetup.Launched(ws)
	}
}

// PlatformExec runs a command in a running workspace on the platform's
// behalf (the git setup): req goes to the agent as it is — user, working
// directory, environment and input included — fenced by the workspace's
// epoch. Unlike Exec it is not the user's activity: the idle timer and
// last_activity do not move. It fails like Exec.
func (l *Lifecycle) PlatformExec(ctx context.Context, ws registry.Workspace, req wire.ExecRequest) (wire.ExecResult, error) {
	if ws.Status != fleet.StatusRunning {
		return wire.ExecResult{}, fmt.Errorf("%w (status: %s)", ErrNotRunning, ws.Status)
	}
	client, cctx, err := l.client(ctx, ws)
	if err != nil {
		return wire.ExecResult{}, err
	}
	res, err := client.Exec(cctx, ws.ContainerID, req)
	if err != nil {
		return wire.ExecResult{}, agentError(err)
	}
	return res, nil
}

// setGitEnv puts the contract's GIT_* variables (§9.3) into a container's
// environment: the repos, the branch, the identity and the credentials.
// Only with Config.GitEnv, for images that clone by themselves; otherwise
// the git setup does that work and no credential is in the container's
// environment, where `docker inspect` shows it.
func setGitEnv(env map[string]string, ws registry.Workspace, creds registry.Credentials) {
	set := func(k, v string) {
		if v != "" {
			env[k] = v
		}
	}
	set("GIT_REPOS", strings.Join(ws.Repositories, ","))
	set("GIT_CREDENTIALS", creds.Git)
	set("GIT_BRANCH", ws.Settings.GitBranch)
	set("GIT_USER_NAME", ws.Settings.GitName)
	set("GIT_USER_EMAIL", ws.Settings.GitEmail)
}
