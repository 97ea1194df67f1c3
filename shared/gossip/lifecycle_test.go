package gossip

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"berth/shared/testutil"
	"berth/shared/wire"
)

var (
	key1 = []byte("11111111111111111111111111111111")
	key2 = []byte("22222222222222222222222222222222")
)

func startPool(t *testing.T, cfg Config, meta wire.NodeMeta) *Pool {
	t.Helper()
	cfg.BindAddr = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cfg.Label, cfg.Fast = "berth-test", true
	if meta.ServerID == "" {
		meta = wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: cfg.Name}
	}
	p, err := New(cfg, meta, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// hears waits until to sees from's latest metadata (workspaces = n): the
// two members still talk with their current keyrings.
func hears(t *testing.T, from, to *Pool, n int, step string) {
	t.Helper()
	if err := from.SetMeta(wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: from.name, Workspaces: n}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Second, step+": "+to.name+" hears "+from.name, func() bool {
		for _, m := range to.Members() {
			if m.Name == from.name && m.State == StateAlive && m.Meta.Workspaces == n {
				return true
			}
		}
		return false
	})
}

// The three-step rotation between two real members: they keep hearing each
// other at every step, and at the end only the new key gets in.
func TestKeyringRotation(t *testing.T) {
	a := startPool(t, Config{Name: "a", Keys: [][]byte{key1}}, wire.NodeMeta{})
	b := startPool(t, Config{Name: "b", Keys: [][]byte{key1}}, wire.NodeMeta{})
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		aKeys [][]byte // applied to a, checked, then to b
	}{
		{"add", [][]byte{key1, key2}},
		{"use", [][]byte{key2, key1}},
		{"remove", [][]byte{key2}},
	}
	n := 0
	for _, s := range steps {
		for _, p := range []*Pool{a, b} { // one member at a time, as on a real cluster
			if err := p.SetKeys(s.aKeys); err != nil {
				t.Fatalf("%s on %s: %v", s.name, p.name, err)
			}
			n++
			hears(t, a, b, n, s.name)
			hears(t, b, a, n, s.name)
		}
		for _, p := range []*Pool{a, b} {
			if !slices.EqualFunc(p.Keys(), s.aKeys, bytes.Equal) {
				t.Errorf("%s: %s keys = %q, want %q", s.name, p.name, p.Keys(), s.aKeys)
			}
		}
	}
	old := startPool(t, Config{Name: "old", Keys: [][]byte{key1}}, wire.NodeMeta{})
	if _, err := old.Join([]string{a.LocalAddr()}); err == nil {
		t.Error("a member with only the removed key joined, want refusal")
	}
	fresh := startPool(t, Config{Name: "fresh", Keys: [][]byte{key2}}, wire.NodeMeta{})
	if _, err := fresh.Join([]string{a.LocalAddr()}); err != nil {
		t.Errorf("a member with the new key: %v", err)
	}
}

// Using the new key on one member before the other has it cuts them
// apart: the order of the steps matters (this is what the test above
// guards against).
func TestKeyringUseBeforeAddCutsOff(t *testing.T) {
	a := startPool(t, Config{Name: "a", Keys: [][]byte{key1}}, wire.NodeMeta{})
	b := startPool(t, Config{Name: "b", Keys: [][]byte{key1}}, wire.NodeMeta{})
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetKeys([][]byte{key2}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "b loses a", func() bool { return stateOf(b, "a") != StateAlive })
}

func TestParseKeys(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name    string
		file    string
		want    [][]byte
		wantErr string
	}{
		{"one key", b64(key1) + "\n", [][]byte{key1}, ""},
		{"primary first, comments and blanks skipped", "# rotation\n" + b64(key2) + "\n\n  " + b64(key1) + "  \n", [][]byte{key2, key1}, ""},
		{"empty", "\n# nothing\n", nil, "holds no key"},
		{"short key", b64([]byte("short")), nil, "line 1: want 16, 24 or 32 bytes, got 5"},
		{"not base64", b64(key1) + "\n***\n", nil, "line 2"},
		{"repeated", b64(key1) + "\n" + b64(key1), nil, "repeated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeys([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.EqualFunc(got, tt.want, bytes.Equal) {
				t.Fatalf("ParseKeys = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

// The key file is re-read when rewritten in place (what a single-file bind
// mount sees); a broken file keeps the keyring.
func TestWatchKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.key")
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // in place: same inode
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	b64 := base64.StdEncoding.EncodeToString
	write(b64(key1) + "\n")
	logs := &lockedBuffer{}
	p, err := New(Config{Name: "a", Keys: [][]byte{key1}, BindAddr: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
		Label: "berth-test", Fast: true}, wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "a"},
		hclog.New(&hclog.LoggerOptions{Output: logs}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown() })
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-done }()
	go func() { p.WatchKeyFile(ctx, path, 10*time.Millisecond); close(done) }()

	write(b64(key2) + "\n" + b64(key1) + "\n")
	testutil.Eventually(t, 2*time.Second, "keyring follows the file", func() bool {
		return slices.EqualFunc(p.Keys(), [][]byte{key2, key1}, bytes.Equal)
	})
	write("garbage\n")
	testutil.Eventually(t, 2*time.Second, "the bad file seen and refused", func() bool {
		return strings.Contains(logs.String(), "gossip key file refused")
	})
	if !slices.EqualFunc(p.Keys(), [][]byte{key2, key1}, bytes.Equal) {
		t.Errorf("after a bad file: keys = %q, want the keyring kept", p.Keys())
	}
	write(b64(key2) + "\n") // a later good file is still picked up
	testutil.Eventually(t, 2*time.Second, "keyring follows the file after a bad one", func() bool {
		return slices.EqualFunc(p.Keys(), [][]byte{key2}, bytes.Equal)
	})
}

func TestBadFileKeepsKeyring(t *testing.T) {
	p := startPool(t, Config{Name: "a", Keys: [][]byte{key1, key2}}, wire.NodeMeta{})
	if err := p.loadKeys([]byte("garbage")); err == nil {
		t.Fatal("loadKeys(garbage) succeeded")
	}
	if !slices.EqualFunc(p.Keys(), [][]byte{key1, key2}, bytes.Equal) {
		t.Errorf("keys = %q, want the previous keyring", p.Keys())
	}
}

func TestCheckMember(t *testing.T) {
	enc := func(m wire.NodeMeta) []byte { b, _ := m.Encode(); return b }
	good := wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "ws-1", AgentAddr: "ws-1:7443", CPUUsedPct: 40}
	tests := []struct {
		name    string
		node    string
		meta    []byte
		wantErr string
	}{
		{"agent", "ws-1", enc(good), ""},
		{"scheduler", "scheduler", enc(wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler"}), ""},
		{"too large", "ws-1", append(enc(good), bytes.Repeat([]byte(" "), 600)...), "limit 512"},
		{"not JSON", "ws-1", []byte("{"), "decode node meta"},
		{"no metadata", "ws-1", nil, "empty node metadata"},
		{"unknown role", "ws-1", enc(wire.NodeMeta{Role: "x", ServerID: "ws-1"}), `role "x"`},
		{"name is not the server id", "ws-2", enc(good), `metadata names "ws-1", the member is "ws-2"`},
		{"bad agent address", "ws-1", enc(wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "ws-1", AgentAddr: "nope"}), "agent address"},
		{"cpu out of range", "ws-1", enc(wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "ws-1", CPUUsedPct: 900}), "0..100"},
		{"negative memory", "ws-1", enc(wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "ws-1", MemTotalMB: -1}), "memory -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkMember(&memberlist.Node{Name: tt.node, Meta: tt.meta})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrRefused mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// A member the Admit hook refuses (a name that is not a registered server)
// and one whose metadata claims another's name never enter the view, while
// a good member joining the same way does.
func TestAdmission(t *testing.T) {
	var mu sync.Mutex
	refused := map[string]bool{}
	sched := startPool(t, Config{Name: "scheduler", Keys: [][]byte{key1}, Admit: func(m Member) error {
		if m.Meta.Role == wire.NodeRoleAgent && m.Name != "ws-1" {
			mu.Lock()
			refused[m.Name] = true
			mu.Unlock()
			return fmt.Errorf("%w: %q", ErrUnregistered, m.Name)
		}
		return nil
	}}, wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler"})
	good := startPool(t, Config{Name: "ws-1", Keys: [][]byte{key1}}, wire.NodeMeta{})
	unknown := startPool(t, Config{Name: "ws-9", Keys: [][]byte{key1}}, wire.NodeMeta{})
	liar := startPool(t, Config{Name: "ws-8", Keys: [][]byte{key1}}, wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: "ws-1"})
	for _, p := range []*Pool{good, unknown, liar} {
		p.Join([]string{sched.LocalAddr()}) // refused members may still count the contact
	}
	testutil.Eventually(t, 3*time.Second, "ws-1 admitted and ws-9 refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stateOf(sched, "ws-1") == StateAlive && refused["ws-9"]
	})
	if s := stateOf(sched, "ws-8"); s != "" {
		t.Errorf("ws-8 (claiming ws-1's id) is in the scheduler's view (%s), want refused", s)
	}
	// The unregistered agent is refused membership (no member, no event)
	// but listed as a candidate an operator may register.
	testutil.Eventually(t, 3*time.Second, "ws-9 listed", func() bool { return memberByName(sched, "ws-9").Name != "" })
	if m := memberByName(sched, "ws-9"); !m.Unregistered || m.State != StateAlive || m.Meta.ServerID != "ws-9" {
		t.Errorf("ws-9 listed as %+v, want an alive unregistered candidate", m)
	}
	if n := sched.NumAlive(); n != 2 {
		t.Errorf("memberlist members = %d, want 2 (the scheduler and ws-1)", n)
	}
	if m := memberByName(sched, "ws-1"); m.Addr != good.LocalAddr() {
		t.Errorf("ws-1 at %s, want the real member's %s", m.Addr, good.LocalAddr())
	}
	// /metrics counts the same view, candidates included.
	if diff := cmp.Diff(map[string]int{StateAlive: 3}, sched.CountByState()); diff != "" {
		t.Errorf("CountByState (-want +got), the scheduler, ws-1 and the candidate ws-9:\n%s", diff)
	}
}

func memberByName(p *Pool, name string) Member {
	for _, m := range p.Members() {
		if m.Name == name {
			return m
		}
	}
	return Member{}
}

// Members that left (or died) are forgotten after PruneAfter.
func TestPruneLeftMembers(t *testing.T) {
	a := startPool(t, Config{Name: "a", Keys: [][]byte{key1}, PruneAfter: 200 * time.Millisecond}, wire.NodeMeta{})
	b := startPool(t, Config{Name: "b", Keys: [][]byte{key1}}, wire.NodeMeta{})
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, "a sees b", func() bool { return stateOf(a, "b") == StateAlive })
	b.Leave(time.Second)
	// Without pruning b would stay in the view as left (or dead) for good.
	testutil.Eventually(t, 10*time.Second, "b left and pruned from a's view", func() bool { return stateOf(a, "b") == "" })
}

// lockedBuffer is a log output tests read while the pool writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
