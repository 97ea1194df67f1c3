package docker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/shared/testutil"
	"berth/shared/wire"
)

// TestTTY runs shells on a real terminal in a real container: input is
// echoed and evaluated, the size is the one asked for and follows Resize,
// the exit code comes back, and Close hangs up what still runs.
func TestTTY(t *testing.T) {
	c := newTestClient(t)
	ctr := startContainer(t, c, nil)

	t.Run("bash: echo, size, resize, exit code", func(t *testing.T) {
		ctx := testCtx(t)
		tty, err := c.ExecTTY(ctx, ctr.ID, wire.TTYRequest{
			Cmd: []string{"bash", "--norc", "--noprofile", "-i"}, User: "dev", Rows: 24, Cols: 80,
			Env: map[string]string{"PS1": "$ "},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		out := readTTY(tty)
		send(t, tty, "echo hi-$((40+2))\n")
		out.waitFor(t, "hi-42\r\n") // evaluated, not just echoed
		send(t, tty, "stty size\n")
		out.waitFor(t, "24 80\r\n")
		if err := tty.Resize(ctx, 40, 120); err != nil {
			t.Fatal(err)
		}
		send(t, tty, "stty size\n")
		out.waitFor(t, "40 120\r\n")
		send(t, tty, "exit 3\n")
		if err := out.wait(30 * time.Second); err != nil {
			t.Fatalf("output did not end after exit: %v", err)
		}
		code, err := tty.Wait(ctx)
		if err != nil || code != 3 {
			t.Errorf("Wait: got %d, %v, want 3, nil", code, err)
		}
	})

	t.Run("close hangs up the process", func(t *testing.T) {
		ctx := testCtx(t)
		tty, err := c.ExecTTY(ctx, ctr.ID, wire.TTYRequest{Cmd: []string{"bash", "-c", "echo ready; sleep 4242"}})
		if err != nil {
			t.Fatal(err)
		}
		out := readTTY(tty)
		out.waitFor(t, "ready")
		if got := sh(t, c, ctr.ID, "pgrep -f 'sleep 424[2]' | wc -l"); got != "1" {
			t.Fatalf("sleepers before close: got %s, want 1", got)
		}
		if err := tty.Close(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the hung-up process ends", func() bool {
			return sh(t, c, ctr.ID, "pgrep -f 'sleep 424[2]' | wc -l") == "0"
		})
		if err := out.wait(10 * time.Second); err == nil {
			t.Error("Read after Close: got io.EOF, want the closed connection's error")
		}
	})

	t.Run("a tmux client detaches on close; its session lives on", func(t *testing.T) {
		ctx := testCtx(t)
		tty, err := c.ExecTTY(ctx, ctr.ID, wire.TTYRequest{
			Cmd: []string{"tmux", "new-session", "-A", "-s", "berth"}, User: "dev", Rows: 30, Cols: 100,
			Env: map[string]string{"TERM": "xterm-256color"},
		})
		if err != nil {
			t.Fatal(err)
		}
		readTTY(tty)
		tmux := func(args string) string {
			return strings.TrimSpace(run(t, c, ctr.ID, wire.ExecRequest{Cmd: []string{"bash", "-c", "tmux " + args + " 2>&1"}, User: "dev"}).stdout)
		}
		testutil.Eventually(t, 10*time.Second, "one tmux client attached", func() bool { return tmux("list-clients -F x") == "x" })
		if got := tmux("display -p -t berth '#{window_height}x#{window_width}'"); got != "30x100" && got != "29x100" {
			t.Errorf("tmux window: got %s, want the terminal's 30 rows (less a status line) by 100", got)
		}
		if err := tty.Close(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the tmux client is gone", func() bool { return tmux("list-clients -F x") == "" })
		if got := tmux("list-sessions -F '#{session_name}'"); got != "berth" {
			t.Errorf("sessions after the client left: got %q, want berth", got)
		}
	})

	t.Run("a stopped container refuses", func(t *testing.T) {
		stopped := startContainer(t, c, func(r *wire.CreateContainerRequest) { r.Start = false })
		if _, err := c.ExecTTY(testCtx(t), stopped.ID, wire.TTYRequest{Cmd: []string{"bash"}}); !errors.Is(err, ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
		if _, err := c.Address(testCtx(t), stopped.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("Address: got %v, want ErrConflict", err)
		}
	})
}

// TestAddress reaches an HTTP server inside a container at the address
// Address gives, on the bridge, with no port published.
func TestAddress(t *testing.T) {
	c := newTestClient(t)
	ctr := startContainer(t, c, func(r *wire.CreateContainerRequest) {
		buildTestHTTPD(t, filepath.Join(c.DataDir(), "testbin"))
		r.Mounts = []wire.Mount{{Source: "testbin", Target: "/opt/berth-test", ReadOnly: true}}
		r.Cmd = []string{"/opt/berth-test/testhttpd", "-addr", ":8080"}
	})
	ip, err := c.Address(testCtx(t), ctr.ID)
	if err != nil {
		t.Fatal(err)
	}
	if net.ParseIP(ip) == nil {
		t.Fatalf("address %q is not an IP", ip)
	}
	raw, err := c.api.ContainerInspect(testCtx(t), ctr.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.HostConfig.PortBindings) != 0 || raw.HostConfig.PublishAllPorts {
		t.Errorf("port bindings %v: want none published", raw.HostConfig.PortBindings)
	}
	url := "http://" + net.JoinHostPort(ip, "8080") + "/echo?x=1"
	var body string
	testutil.Eventually(t, 15*time.Second, "the app answers on the container's address", func() bool {
		resp, err := http.Post(url, "text/plain", strings.NewReader("ping"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if want := "POST /echo?x=1\nping"; body != want {
		t.Errorf("got %q, want %q", body, want)
	}
}

// buildTestHTTPD builds testdata/testhttpd, statically, into dir.
func buildTestHTTPD(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "testhttpd")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/testhttpd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testhttpd: %v\n%s", err, out)
	}
	return bin
}

func send(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// ttyOutput collects a TTY's output in the background until Read fails.
type ttyOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	err  error // io.EOF is kept as is
}

func readTTY(r io.Reader) *ttyOutput {
	o := &ttyOutput{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		p := make([]byte, 4096)
		for {
			n, err := r.Read(p)
			o.mu.Lock()
			o.buf.Write(p[:n])
			if err != nil {
				o.err = err
			}
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *ttyOutput) String() string { o.mu.Lock(); defer o.mu.Unlock(); return o.buf.String() }

// waitFor waits until the output holds s.
func (o *ttyOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q: no %q within 30s", o.String(), s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the output to end and returns nil if it ended with io.EOF.
func (o *ttyOutput) wait(within time.Duration) error {
	select {
	case <-o.done:
	case <-time.After(within):
		return fmt.Errorf("still open after %v", within)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if errors.Is(o.err, io.EOF) {
		return nil
	}
	return o.err
}
