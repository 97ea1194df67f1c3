package computeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/orchestrator"
)

// The Docker integration test runs the tunnel and preview-port routes, the
// real handlers with their real shell commands, against a container of the
// workspace image with the cloudflared stand-in: the fake's Exec is a
// `docker exec` with the request's user, directory, stdin and timeout,
// which is what the agent does. It skips in -short mode, without Docker,
// and without the image (BERTH_TEST_IMAGE, default berth/workspace:dev;
// `make images` builds it).

func workspaceTestImage() string {
	if v := os.Getenv("BERTH_TEST_IMAGE"); v != "" {
		return v
	}
	return "berth/workspace:dev"
}

// testContainer starts the workspace image, removed when the test ends,
// or skips.
func testContainer(t *testing.T) (docker, id string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Docker: skipped in -short mode")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	image := workspaceTestImage()
	if out, err := exec.CommandContext(ctx, docker, "image", "inspect", "--format", "{{.Id}}", image).CombinedOutput(); err != nil {
		t.Skipf("image %s is not available (%v: %s): build it with `make images`", image, err, bytes.TrimSpace(out))
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "berth-test-tunnels-" + hex.EncodeToString(b)
	out, err := exec.CommandContext(ctx, docker, "run", "--detach", "--rm", "--name", name, image).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = exec.CommandContext(ctx, docker, "rm", "--force", name).Run()
	})
	res, err := dockerExec(ctx, docker, name, devExec("cloudflared --version", nil, 10*time.Second))
	if err != nil || res.ExitCode != 0 || !bytes.Contains(res.Stdout, []byte("berth-standin")) {
		t.Skipf("image %s has no cloudflared stand-in (%v, %q): it predates it; rebuild it with `make images`", image, err, res.Stderr)
	}
	return docker, name
}

// dockerExec runs req in the container as the agent would: bash -c as the
// request's user, in its directory, with its stdin, killed at its timeout.
func dockerExec(ctx context.Context, docker, ctr string, req orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, "exec", "--interactive", "--user", req.User, "--workdir", req.WorkingDir,
		ctr, "bash", "-c", req.Command)
	cmd.Stdin = bytes.NewReader(req.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return orchestrator.ExecResult{TimedOut: true}, nil
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return orchestrator.ExecResult{}, err
	}
	return orchestrator.ExecResult{ExitCode: cmd.ProcessState.ExitCode(), Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, nil
}

// tunnelToken is a token of the dashboard's form, which the stand-in
// checks: base64 of {"a": account, "t": tunnel UUID, "s": base64 secret}.
func tunnelToken(t *testing.T, tunnelID string) string {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	raw, err := json.Marshal(map[string]any{"a": "0123456789abcdef", "t": tunnelID, "s": secret})
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func TestTunnelsInWorkspaceImage(t *testing.T) {
	docker, ctr := testContainer(t)
	ctx := context.Background()
	f := newFake(aliceWS())
	f.execFn = func(req orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		return dockerExec(ctx, docker, ctr, req)
	}
	e := newTestEcho(f, testToken)
	httpToken := tunnelToken(t, "6ff42ae2-765d-4adf-8112-31c55c1551ef")
	sshToken := tunnelToken(t, "0b6e2c1e-4a8f-4d4e-9c51-6a3c7f0f2d11")
	secrets := []string{httpToken, sshToken}

	call := func(t *testing.T, method, path, body string) map[string]any {
		t.Helper()
		rec := req{method: method, path: path, body: body}.send(e)
		for _, s := range secrets {
			if strings.Contains(rec.Body.String(), s) {
				t.Fatalf("%s %s: the answer holds a token: %s", method, path, rec.Body.String())
			}
		}
		if rec.Code != 200 {
			t.Fatalf("%s %s: got %d %s, want 200", method, path, rec.Code, rec.Body.String())
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body.String())
		}
		return v
	}
	start := func(t *testing.T, token string, port int, serviceType string) int {
		t.Helper()
		body := fmt.Sprintf(`{"token":%q,"port":%d,"service_type":%q}`, token, port, serviceType)
		v := call(t, "POST", "/workspaces/ws1/tunnels/start", body)
		pid, ok := v["pid"].(float64)
		if v["status"] != "running" || !ok || v["error"] != nil {
			t.Fatalf("start %d: got %v, want running with a pid", port, v)
		}
		return int(pid)
	}
	stop := func(t *testing.T, port int) {
		t.Helper()
		v := call(t, "POST", "/workspaces/ws1/tunnels/stop", fmt.Sprintf(`{"port":%d}`, port))
		if diff := cmp.Diff(map[string]any{"status": "stopped", "pid": nil, "error": nil}, v); diff != "" {
			t.Fatalf("stop %d (-want +got):\n%s", port, diff)
		}
	}
	status := func(t *testing.T) map[string]any {
		t.Helper()
		return call(t, "GET", "/workspaces/ws1/tunnels/status", "")
	}
	running := func(t *testing.T, want map[int]string) {
		t.Helper()
		v := status(t)
		got := map[int]string{}
		list, _ := v["processes"].([]any)
		for _, p := range list {
			m := p.(map[string]any)
			got[int(m["pid"].(float64))] = m["cmd"].(string)
		}
		wantStatus := "running"
		if len(want) == 0 {
			wantStatus = "stopped"
		}
		if v["status"] != wantStatus || list == nil {
			t.Errorf("status: got %v, want %s with a process list", v, wantStatus)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tunnel processes (-want +got):\n%s", diff)
		}
	}
	alive := func(t *testing.T, pid int) bool {
		t.Helper()
		res, err := dockerExec(ctx, docker, ctr, devExec("kill -0 "+strconv.Itoa(pid), nil, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return res.ExitCode == 0
	}
	const httpCmd = "cloudflared tunnel run --token *** --url http://localhost:3000"
	const sshCmd = "cloudflared tunnel run --token ***"

	running(t, map[int]string{})
	pidHTTP := start(t, httpToken, 3000, "http")
	if again := start(t, httpToken, 3000, "http"); again != pidHTTP {
		t.Errorf("a repeated start: got pid %d, want the running tunnel's %d", again, pidHTTP)
	}
	pidSSH := start(t, sshToken, 2222, "ssh")
	running(t, map[int]string{pidHTTP: httpCmd, pidSSH: sshCmd})

	t.Run("the log names the origin, not the token", func(t *testing.T) {
		var log string
		for deadline := time.Now().Add(5 * time.Second); ; {
			res, err := dockerExec(ctx, docker, ctr, devExec("cat /tmp/cloudflared-3000.log", nil, 10*time.Second))
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("cat: %v %q", err, res.Stderr)
			}
			log = string(res.Stdout)
			if strings.Contains(log, "Stand-in connector up") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, want := range []string{"stand-in", "http://localhost:3000", "Starting metrics server on 127.0.0.1:2024"} {
			if !strings.Contains(log, want) {
				t.Errorf("log: want %q in\n%s", want, log)
			}
		}
		if strings.Contains(log, httpToken) {
			t.Errorf("log holds the token:\n%s", log)
		}
	})

	t.Run("ports: the tunnels' metrics listeners", func(t *testing.T) {
		rec := req{method: "GET", path: "/preview/ws1/ports", header: map[string]string{headerUserID: ""}}.send(e)
		want := `[{"port":20241,"process_name":"cloudflared","state":"LISTEN","protocol":"http","label":"cloudflared"},
			{"port":20242,"process_name":"cloudflared","state":"LISTEN","protocol":"http","label":"cloudflared"}]`
		checkJSON(t, rec, 200, want)
	})

	t.Run("stop 3000 leaves the ssh tunnel", func(t *testing.T) {
		stop(t, 3000)
		running(t, map[int]string{pidSSH: sshCmd})
		if alive(t, pidHTTP) {
			t.Errorf("pid %d (3000) is still alive", pidHTTP)
		}
		if !alive(t, pidSSH) {
			t.Errorf("pid %d (2222) died", pidSSH)
		}
	})

	t.Run("another token on 2222 replaces its tunnel", func(t *testing.T) {
		other := tunnelToken(t, "0b6e2c1e-4a8f-4d4e-9c51-6a3c7f0f2d11")
		secrets = append(secrets, other)
		pid := start(t, other, 2222, "ssh")
		if pid == pidSSH {
			t.Fatalf("got the old pid %d back", pid)
		}
		running(t, map[int]string{pid: sshCmd})
		if alive(t, pidSSH) {
			t.Errorf("the replaced tunnel, pid %d, is still alive", pidSSH)
		}
		pidSSH = pid
	})

	t.Run("stop 2222 stops it", func(t *testing.T) {
		stop(t, 2222)
		running(t, map[int]string{})
		if alive(t, pidSSH) {
			t.Errorf("pid %d (2222) is still alive", pidSSH)
		}
	})

	t.Run("stopping nothing is a success", func(t *testing.T) { stop(t, 2222) })

	t.Run("ports: none left", func(t *testing.T) {
		rec := req{method: "GET", path: "/preview/ws1/ports"}.send(e)
		checkJSON(t, rec, 200, `[]`)
	})

	t.Run("a bad token: the stand-in exits, status tells", func(t *testing.T) {
		pid := start(t, "not-a-token", 4000, "http")
		deadline := time.Now().Add(5 * time.Second)
		for alive(t, pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		running(t, map[int]string{})
		res, _ := dockerExec(ctx, docker, ctr, devExec("cat /tmp/cloudflared-4000.log", nil, 10*time.Second))
		if !strings.Contains(string(res.Stdout), "Provided Tunnel token is not valid.") {
			t.Errorf("log: got %q, want the token error", res.Stdout)
		}
	})

	// Every exec of the routes ran as dev in /home/dev with the 30 s
	// timeout, and the tokens went in on stdin only.
	for _, r := range f.execs {
		if r.User != "dev" || r.WorkingDir != "/home/dev" || r.Timeout != 30*time.Second {
			t.Errorf("exec %q: user %q dir %q timeout %v, want dev, /home/dev, 30s", r.Command, r.User, r.WorkingDir, r.Timeout)
		}
		if slices.ContainsFunc(secrets, func(s string) bool { return strings.Contains(r.Command, s) }) {
			t.Errorf("a token is in the command: %s", r.Command)
		}
	}
}
