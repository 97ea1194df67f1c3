package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
)

// Under runsc an exec's processes live in the sandbox's own kernel: the PID
// Docker reports is the host's `runsc exec` client, not the command, and
// killing it leaves the command running. So every exec in a runsc
// container carries a marker in its environment (inherited by its
// children), and killing or hanging up an exec signals, from a second exec
// as the same user, every process of the sandbox whose environment holds
// the marker.

// execMarkerEnv names the marker variable.
const execMarkerEnv = "BERTH_EXEC"

// sandboxExec is what killExec and hangup need of an exec in a runsc
// container.
type sandboxExec struct {
	container, marker, user string
}

// isRunsc reports whether ctr runs under runsc.
func isRunsc(ctr container.InspectResponse) bool {
	return ctr.HostConfig != nil && ctr.HostConfig.Runtime == RuntimeRunsc
}

// markExec returns env with a fresh marker added when ctr runs under runsc,
// and the record to register once the exec exists (nil otherwise).
func markExec(ctr container.InspectResponse, user string, env []string) ([]string, *sandboxExec) {
	if !isRunsc(ctr) {
		return env, nil
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	m := hex.EncodeToString(b)
	return append(env, execMarkerEnv+"="+m), &sandboxExec{container: ctr.ID, marker: m, user: user}
}

// signalScript signals ($2) every process whose environment holds
// BERTH_EXEC=$1; those it may not read are not its user's anyway.
const signalScript = `for p in /proc/[0-9]*; do
	if tr '\000' '\n' <"$p/environ" 2>/dev/null | grep -qx "` + execMarkerEnv + `=$1"; then kill -"$2" "${p#/proc/}" 2>/dev/null; fi
done; true`

// signalInSandbox sends sig (KILL, HUP) to the processes of e.
func (c *Client) signalInSandbox(ctx context.Context, e *sandboxExec, sig string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	_, _, err := c.Exec(ctx, e.container, wire.ExecRequest{
		Cmd: []string{"sh", "-c", signalScript, "sh", e.marker, sig}, User: e.user,
	}, nil, io.Discard, io.Discard)
	if err != nil {
		return err
	}
	c.log.Debug("signalled exec processes in the sandbox", "container", e.container, "signal", sig)
	return nil
}
