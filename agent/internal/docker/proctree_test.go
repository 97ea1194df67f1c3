package docker

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestKillTree starts a local process tree (bash with two background sleeps)
// and checks that killTree kills the root and every descendant, not only the
// root (whose children would be reparented and survive).
func TestKillTree(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	cmd := exec.Command("bash", "-c", "sleep 300 & sleep 300 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	root := cmd.Process.Pid
	var kids []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if kids, err = childrenOf(root); err != nil {
			t.Fatal(err)
		}
		if len(kids) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bash has %d children after 10s, want 2", len(kids))
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}

	killed, err := killTree(root, func(int) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := killed, 3; got != want {
		t.Errorf("killed: got %d, want %d", got, want)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("root still running 10s after killTree")
	}
	for _, k := range kids {
		deadline := time.Now().Add(10 * time.Second)
		for processAlive(k) {
			if time.Now().After(deadline) {
				t.Fatalf("child %d still alive 10s after killTree", k)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestKillTreeRespectsFilter(t *testing.T) {
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	killed, err := killTree(cmd.Process.Pid, func(int) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if killed != 0 || !processAlive(cmd.Process.Pid) {
		t.Errorf("got killed=%d alive=%v, want 0 and alive", killed, processAlive(cmd.Process.Pid))
	}
}

// processAlive reports whether pid exists and is not a zombie (an orphan
// waits for its new parent to reap it).
func processAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 || i+2 >= len(raw) {
		return false
	}
	state := raw[i+2]
	return state != 'Z' && state != 'X'
}
