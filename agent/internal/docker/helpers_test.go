package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
)

// The integration tests run against the machine's real dockerd. They skip
// when the daemon is unreachable or lacks the test image (`make test` builds
// it first, so there they run).
const testSocket = "/var/run/docker.sock"

// testImage is the image the integration tests run: BERTH_TEST_IMAGE, by
// default the workspace image. It needs bash, coreutils and procps.
func testImage() string {
	if v := os.Getenv("BERTH_TEST_IMAGE"); v != "" {
		return v
	}
	return "berth/workspace:dev"
}

// newTestClient connects to the local daemon with a temporary data dir, or
// skips the test when Docker is unreachable.
func newTestClient(t *testing.T) *Client {
	t.Helper()
	conn, err := net.DialTimeout("unix", testSocket, 2*time.Second)
	if err != nil {
		t.Skipf("docker is unreachable at %s (%v): skipping integration test", testSocket, err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(ctx, Options{Host: "unix://" + testSocket, DataDir: t.TempDir(), ServerID: "test-server"}, hclog.NewNullLogger())
	if err != nil {
		t.Skipf("docker is unreachable at %s (%v): skipping integration test", testSocket, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.api.ImageInspect(ctx, testImage()); err != nil {
		t.Skipf("test image %s is not in the local daemon (%v): build it with `make images` (`make test` does), "+
			"or set BERTH_TEST_IMAGE to a local image with bash, coreutils and procps", testImage(), err)
	}
	return c
}

// rawSDK is the real SDK client behind c, for test steps the adapter does
// not offer (killing a container from outside).
func rawSDK(c *Client) *client.Client { return c.api.(*client.Client) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testName is a fresh container name, berth-test-<random>, whose container
// (if one ever exists) is force-removed when the test ends, pass or fail.
func testName(t *testing.T, c *Client) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "berth-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := c.api.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !isNotFound(err) {
			t.Errorf("cleanup: remove %s: %v", name, err)
		}
	})
	return name
}

// baseRequest is a started, labelled container that sleeps forever.
func baseRequest(name string) wire.CreateContainerRequest {
	return wire.CreateContainerRequest{
		Name:      name,
		Image:     testImage(),
		Cmd:       []string{"sleep", "infinity"},
		Resources: wire.Resources{CPU: 1, MemoryMB: 512},
		Start:     true,
	}
}

// startContainer creates and starts a berth container for the test.
func startContainer(t *testing.T, c *Client, mutate func(*wire.CreateContainerRequest)) wire.Container {
	t.Helper()
	req := baseRequest(testName(t, c))
	if mutate != nil {
		mutate(&req)
	}
	ctr, err := c.Create(testCtx(t), req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return ctr
}

type execOut struct {
	code     int
	timedOut bool
	stdout   string
	stderr   string
}

// run execs cmd and fails the test on an error.
func run(t *testing.T, c *Client, id string, req wire.ExecRequest) execOut {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code, timedOut, err := c.Exec(testCtx(t), id, req, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("exec %q: %v", req.Cmd, err)
	}
	return execOut{code: code, timedOut: timedOut, stdout: stdout.String(), stderr: stderr.String()}
}

// sh runs a bash script as root and returns its trimmed stdout, failing
// the test unless it exits 0.
func sh(t *testing.T, c *Client, id, script string) string {
	t.Helper()
	out := run(t, c, id, wire.ExecRequest{Cmd: []string{"bash", "-c", script}, User: "root"})
	if out.code != 0 {
		t.Fatalf("%q: exit %d, stderr %q", script, out.code, out.stderr)
	}
	return strings.TrimSpace(out.stdout)
}

// assertGone fails unless no container named name exists (berth's or not).
func assertGone(t *testing.T, c *Client, name string) {
	t.Helper()
	_, err := c.api.ContainerInspect(testCtx(t), name)
	if !isNotFound(err) {
		t.Errorf("container %s: got inspect error %v, want it not to exist", name, err)
	}
}
