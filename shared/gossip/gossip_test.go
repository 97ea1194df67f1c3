package gossip

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"berth/shared/testutil"
	"berth/shared/wire"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// TestMain doubles as a gossip member process: the multi-process test runs
// this test binary again with BERTH_GOSSIP_CHILD set.
func TestMain(m *testing.M) {
	if name := os.Getenv("BERTH_GOSSIP_CHILD"); name != "" {
		os.Exit(runChild(name))
	}
	os.Exit(m.Run())
}

func runChild(name string) int {
	key, _ := base64.StdEncoding.DecodeString(os.Getenv("BERTH_GOSSIP_KEY"))
	p, err := New(Config{Name: name, BindAddr: os.Getenv("BERTH_GOSSIP_BIND"), Key: key, Label: "berth-test", Fast: true},
		wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: name, CPUMilli: 2000, Region: "local"}, hclog.NewNullLogger())
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := p.Join(strings.Split(os.Getenv("BERTH_GOSSIP_JOIN"), ",")); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // run until the parent closes stdin or kills us
	p.Leave(time.Second)
	return 0
}

func newPool(t *testing.T, name string, key []byte, label string) *Pool {
	t.Helper()
	p, err := New(Config{Name: name, BindAddr: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), Key: key, Label: label, Fast: true},
		wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: name}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

func stateOf(p *Pool, name string) string {
	for _, m := range p.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// Three agent processes and a scheduler (this process) on loopback.
func TestMultiProcessMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	sched := newPool(t, "scheduler", testKey, "berth-test")
	start := time.Now()
	children := map[string]*exec.Cmd{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("agent-%d", i)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"BERTH_GOSSIP_CHILD="+name,
			"BERTH_GOSSIP_KEY="+base64.StdEncoding.EncodeToString(testKey),
			"BERTH_GOSSIP_BIND=127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)),
			"BERTH_GOSSIP_JOIN="+sched.LocalAddr(),
		)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("%s: %q, want ready", name, line)
		}
		children[name] = cmd
	}
	testutil.Eventually(t, 2*time.Second, "all three agents alive in the scheduler's view", func() bool {
		for name := range children {
			if stateOf(sched, name) != StateAlive {
				return false
			}
		}
		return true
	})
	t.Logf("3 agents joined and were seen alive %s after the first started", time.Since(start).Round(time.Millisecond))
	for _, m := range sched.Members() {
		if m.Name == "agent-2" && (m.Meta.ServerID != "agent-2" || m.Meta.CPUMilli != 2000 || m.Meta.Region != "local") {
			t.Errorf("agent-2 meta = %+v, want its own server id, 2000 milli-cores, region local", m.Meta)
		}
	}

	killed := time.Now()
	if err := children["agent-2"].Process.Kill(); err != nil { // SIGKILL: no graceful leave
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "killed agent-2 noticed as dead", func() bool {
		return stateOf(sched, "agent-2") == StateDead
	})
	t.Logf("killed agent noticed dead after %s", time.Since(killed).Round(time.Millisecond))
	for _, name := range []string{"agent-1", "agent-3"} {
		if got := stateOf(sched, name); got != StateAlive {
			t.Errorf("%s state = %q, want alive (no false positive)", name, got)
		}
	}
}

func TestMetaUpdatePropagates(t *testing.T) {
	a := newPool(t, "a", testKey, "berth-test")
	b := newPool(t, "b", testKey, "berth-test")
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMeta(wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "b", Workspaces: 7}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "a sees b's new meta", func() bool {
		for _, m := range a.Members() {
			if m.Name == "b" && m.Meta.Workspaces == 7 {
				return true
			}
		}
		return false
	})
}

// A node without the cluster key (or with another label) can neither join
// nor get its metadata into the view.
func TestIntrudersRefused(t *testing.T) {
	member := newPool(t, "member", testKey, "berth-test")

	wrongKey := newPool(t, "wrong-key", []byte("ffffffffffffffffffffffffffffffff"), "berth-test")
	if _, err := wrongKey.Join([]string{member.LocalAddr()}); err == nil {
		t.Error("join with the wrong key succeeded, want refusal")
	}
	wrongLabel := newPool(t, "wrong-label", testKey, "other-cluster")
	if _, err := wrongLabel.Join([]string{member.LocalAddr()}); err == nil {
		t.Error("join with another cluster label succeeded, want refusal")
	}

	// A plain memberlist with no encryption at all, carrying forged metadata.
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "plaintext", "127.0.0.1", testutil.FreePort(t)
	mc.Label = "berth-test"
	mc.LogOutput = io.Discard
	forged, _ := wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "member", CPUMilli: 999000}.Encode()
	mc.Delegate = staticMeta(forged)
	plain, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	if _, err := plain.Join([]string{member.LocalAddr()}); err == nil {
		t.Error("join without encryption succeeded, want refusal")
	}

	for _, m := range member.Members() {
		if m.Name != "member" {
			t.Errorf("view contains intruder %q (meta %+v)", m.Name, m.Meta)
		}
	}
	if n := member.NumAlive(); n != 1 {
		t.Errorf("NumAlive = %d, want 1", n)
	}
}

func TestNewRequiresKey(t *testing.T) {
	_, err := New(Config{Name: "x", BindAddr: "127.0.0.1:0", Label: "l"}, wire.NodeMeta{}, hclog.NewNullLogger())
	if err == nil {
		t.Fatal("New without a key succeeded, want error")
	}
}

type staticMeta []byte

func (s staticMeta) NodeMeta(int) []byte             { return s }
func (s staticMeta) NotifyMsg([]byte)                {}
func (s staticMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (s staticMeta) LocalState(bool) []byte          { return nil }
func (s staticMeta) MergeRemoteState([]byte, bool)   {}
