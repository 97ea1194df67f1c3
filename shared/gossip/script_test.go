package gossip

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The rotation steps of scripts/pki.sh produce the key files of ParseKeys'
// three-step rotation, rewriting the file in place (a single-file bind
// mount sees only that), and refuse steps out of order.
func TestGossipKeyScript(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gossip.key")
	run := func(ok bool, args ...string) {
		t.Helper()
		out, err := exec.Command("../../scripts/pki.sh", append(args, file)...).CombinedOutput()
		if (err == nil) != ok {
			t.Fatalf("pki.sh %v: err %v, want ok=%v\n%s", args, err, ok, out)
		}
	}
	keys := func() [][]byte {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParseKeys(b)
		if err != nil {
			t.Fatalf("ParseKeys: %v\n%s", err, b)
		}
		return k
	}
	inode := func() uint64 {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	run(true, "gossip-key")
	old := keys()
	ino := inode()
	run(false, "gossip-key-use") // nothing added yet
	run(true, "gossip-key-add")
	added := keys()
	if len(added) != 2 || !bytes.Equal(added[0], old[0]) {
		t.Fatalf("after add: %d keys, primary changed=%v; want 2, the old primary", len(added), !bytes.Equal(added[0], old[0]))
	}
	run(false, "gossip-key-add") // a rotation is in progress
	run(true, "gossip-key-use")
	used := keys()
	if len(used) != 2 || !bytes.Equal(used[0], added[1]) || !bytes.Equal(used[1], old[0]) {
		t.Fatal("after use: want the new key first, the old one second")
	}
	run(true, "gossip-key-remove")
	if final := keys(); len(final) != 1 || !bytes.Equal(final[0], added[1]) {
		t.Fatal("after remove: want only the new key")
	}
	if inode() != ino {
		t.Error("the file was replaced (new inode), want it rewritten in place")
	}
}
