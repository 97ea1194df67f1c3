package agentproc

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// Agent is a running agent process.
type Agent struct {
	ServerID  string
	PID       int    // of the agent process
	Addr      string // host:port of its mTLS API
	DataDir   string
	PKI       *testutil.PKI
	Scheduler mtls.Files // a scheduler identity the agent accepts
	Client    *agentclient.Client
}

// Image is the workspace image tests use: BERTH_TEST_IMAGE or
// berth/workspace:dev (built by `make images`).
func Image() string {
	if img := os.Getenv("BERTH_TEST_IMAGE"); img != "" {
		return img
	}
	return "berth/workspace:dev"
}

// Start builds and starts bin/agent as server serverID (or the binary
// BERTH_AGENTPROC_BIN names). It skips the test when there is no Docker
// daemon.
func Start(t testing.TB, serverID string) *Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the agent binary against real Docker: not in -short")
	}
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("no Docker daemon on /var/run/docker.sock")
	}
	bin := os.Getenv("BERTH_AGENTPROC_BIN") // a prebuilt agent (e.g. another version's, for a before/after measurement)
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "agent")
		build := exec.Command("go", "build", "-o", bin, "berth/agent")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build agent: %v\n%s", err, out)
		}
	}
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue(serverID, wire.RoleAgent, true, serverID, "127.0.0.1")
	schedCert, schedKey := pki.Issue("scheduler", wire.RoleScheduler, false)
	a := &Agent{ServerID: serverID, DataDir: t.TempDir(), PKI: pki,
		Scheduler: mtls.Files{Cert: schedCert, Key: schedKey, CA: pki.CAFile}}
	d, err := agentclient.NewDialer(a.Scheduler)
	if err != nil {
		t.Fatal(err)
	}
	// A free port can be taken by another test between the look and the
	// agent's bind: then the agent exits at once, and it starts again on
	// other ports.
	for attempt := 1; ; attempt++ {
		a.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"BERTH_SERVER_ID="+serverID,
			"BERTH_LISTEN="+a.Addr,
			"BERTH_TLS_CERT="+cert, "BERTH_TLS_KEY="+key, "BERTH_TLS_CA="+pki.CAFile,
			"BERTH_GOSSIP_BIND=127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)),
			"BERTH_GOSSIP_KEY="+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
			"BERTH_DATA_DIR="+a.DataDir,
			"BERTH_LOG_LEVEL=debug",
		)
		logs, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		a.PID = cmd.Process.Pid
		var mu sync.Mutex
		var buf strings.Builder
		logged, exited := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(logged)
			sc := bufio.NewScanner(logs)
			for sc.Scan() {
				mu.Lock()
				buf.WriteString(sc.Text() + "\n")
				mu.Unlock()
			}
		}()
		go func() {
			<-logged // Wait closes the pipe: read it all first
			_ = cmd.Wait()
			close(exited)
		}()
		log := func() string {
			mu.Lock()
			defer mu.Unlock()
			return buf.String()
		}
		a.Client = d.Client(serverID, a.Addr)
		ready := false
		deadline := time.Now().Add(15 * time.Second)
		for !ready && time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Now() // it will not answer
				continue
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			h, err := a.Client.Health(ctx)
			cancel()
			if ready = err == nil && h.DockerOK; !ready {
				time.Sleep(50 * time.Millisecond) // poll interval
			}
		}
		if ready {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt)
				<-exited // an interrupted agent exits non-zero
				// The agent leaves its data directory bound nosuid,nodev (and homes
				// loop-mounted) for the workspaces it outlives: detach them, and
				// what is mounted below, before the temp dir is removed.
				for i := 0; i < 4 && syscall.Unmount(a.DataDir, syscall.MNT_DETACH) == nil; i++ {
				}
				if t.Failed() {
					t.Logf("agent %s log:\n%s", serverID, log())
				}
			})
			break
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt < 3 && strings.Contains(log(), "address already in use") {
			continue
		}
		t.Fatalf("agent %s did not answer its health endpoint within 15 s; its log:\n%s", serverID, log())
	}
	return a
}
