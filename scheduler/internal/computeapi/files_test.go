package computeapi

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
)

const sampleListing = `total 16
drwxr-xr-x  3 dev dev 4096 Jan  5 10:11 .
drwxr-xr-x  1 root root 4096 Jan  5 10:00 ..
-rw-r--r--  1 dev dev   12 Jan  5 10:11 my   notes.txt
drwxr-xr-x  2 dev dev 4096 Jan  5 10:11 src
-rw-r--r--  1 dev dev 1234567 Dec 31  2025 big.bin
`

func TestParseListing(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []fileEntry
	}{
		{name: "ls -la", out: sampleListing, want: []fileEntry{
			{Name: ".", Type: "directory", Size: "4096"},
			{Name: "..", Type: "directory", Size: "4096"},
			{Name: "my notes.txt", Type: "file", Size: "12"},
			{Name: "src", Type: "directory", Size: "4096"},
			{Name: "big.bin", Type: "file", Size: "1234567"},
		}},
		{name: "empty", out: "", want: []fileEntry{}},
		{name: "only the total line", out: "total 0\n", want: []fileEntry{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseListing(tt.out)); diff != "" {
				t.Errorf("parseListing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileRoutes(t *testing.T) {
	exit := func(code int, stdout, stderr string) func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		return func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{ExitCode: code, Stdout: []byte(stdout), Stderr: []byte(stderr)}, nil
		}
	}
	notRunning := func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		return orchestrator.ExecResult{}, fmt.Errorf("%w (status: stopped)", orchestrator.ErrNotRunning)
	}
	dev := func(cmd, stdin string) *orchestrator.ExecRequest {
		r := devExec(cmd, nil, 30*time.Second)
		if stdin != "" {
			r.Stdin = []byte(stdin)
		}
		return &r
	}
	tests := []struct {
		name       string
		method     string
		path, body string
		syncStatus fleet.Status
		execFn     func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)
		wantStatus int
		wantBody   string
		wantExec   *orchestrator.ExecRequest
	}{
		{name: "list the home", method: "GET", path: "/workspaces/ws1/files", execFn: exit(0, sampleListing, ""),
			wantStatus: 200, wantBody: `[{"name":".","type":"directory","size":"4096"},{"name":"..","type":"directory","size":"4096"},
				{"name":"my notes.txt","type":"file","size":"12"},{"name":"src","type":"directory","size":"4096"},
				{"name":"big.bin","type":"file","size":"1234567"}]`,
			wantExec: dev(`LC_ALL=C ls -laL -- '.'`, "")},
		{name: "list a path with a quote", method: "GET", path: "/workspaces/ws1/files?path=it%27s%20here", execFn: exit(0, "total 0\n", ""),
			wantStatus: 200, wantBody: `[]`, wantExec: dev(`LC_ALL=C ls -laL -- 'it'\''s here'`, "")},
		{name: "list a missing dir", method: "GET", path: "/workspaces/ws1/files?path=nope",
			execFn: exit(2, "", "ls: cannot access 'nope': No such file or directory\n"), wantStatus: 200, wantBody: `[]`,
			wantExec: dev(`LC_ALL=C ls -laL -- 'nope'`, "")},
		{name: "list a stopped workspace", method: "GET", path: "/workspaces/ws1/files", syncStatus: fleet.StatusStopped,
			execFn: notRunning, wantStatus: 200, wantBody: `[]`, wantExec: dev(`LC_ALL=C ls -laL -- '.'`, "")},

		{name: "read", method: "GET", path: "/workspaces/ws1/files/content?path=src/a.go", execFn: exit(0, "package a\n", ""),
			wantStatus: 200, wantBody: `{"path":"src/a.go","content":"package a\n"}`, wantExec: dev(`cat -- 'src/a.go'`, "")},
		{name: "read an absolute path", method: "GET", path: "/workspaces/ws1/files/content?path=/etc/hostname", execFn: exit(0, "ws\n", ""),
			wantStatus: 200, wantBody: `{"path":"/etc/hostname","content":"ws\n"}`, wantExec: dev(`cat -- '/etc/hostname'`, "")},
		{name: "read a missing file", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			execFn: exit(1, "", "cat: x: No such file or directory\n"), wantStatus: 404,
			wantBody: detail("Failed to read file: cat: x: No such file or directory\n"), wantExec: dev(`cat -- 'x'`, "")},
		{name: "read from a stopped workspace", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			syncStatus: fleet.StatusStopped, execFn: notRunning, wantStatus: 404,
			wantBody: detail("Failed to read file: Workspace is not running (status: stopped)"), wantExec: dev(`cat -- 'x'`, "")},
		{name: "read a binary file", method: "GET", path: "/workspaces/ws1/files/content?path=b", execFn: exit(0, "\x89PNG", ""),
			wantStatus: 404, wantBody: detail("Failed to read file: output is not valid UTF-8 (byte 0x89 at offset 0)"),
			wantExec: dev(`cat -- 'b'`, "")},
		{name: "read without path", method: "GET", path: "/workspaces/ws1/files/content", wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["query","path"],"msg":"Field required","input":null}]}`},

		{name: "write", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"a/b c.txt","content":"hi\n"}`,
			execFn: exit(0, "", ""), wantStatus: 204,
			wantExec: dev(`mkdir -p -- "$(dirname -- 'a/b c.txt')" && cat > 'a/b c.txt'`, "hi\n")},
		{name: "write empty content", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"e","content":""}`,
			execFn: exit(0, "", ""), wantStatus: 204, wantExec: dev(`mkdir -p -- "$(dirname -- 'e')" && cat > 'e'`, "")},
		{name: "write null content", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"e","content":null}`,
			wantStatus: 400, wantBody: detail("Content is required")},
		{name: "write without content", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"e"}`,
			wantStatus: 400, wantBody: detail("Content is required")},
		{name: "write without path", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"content":"x"}`,
			wantStatus: 422, wantBody: `{"detail":[{"type":"missing","loc":["body","path"],"msg":"Field required","input":{"content":"x"}}]}`},
		{name: "write fails", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"/root/x","content":"x"}`,
			execFn: exit(1, "", "bash: /root/x: Permission denied\n"), wantStatus: 404,
			wantBody: detail("Failed to write file: bash: /root/x: Permission denied\n"),
			wantExec: dev(`mkdir -p -- "$(dirname -- '/root/x')" && cat > '/root/x'`, "x")},

		{name: "delete", method: "DELETE", path: "/workspaces/ws1/files?path=old%20dir", execFn: exit(0, "", ""), wantStatus: 204,
			wantExec: dev(`[ -e 'old dir' ] || [ -L 'old dir' ] || exit 3; rm -rf -- 'old dir'`, "")},
		{name: "delete a missing path", method: "DELETE", path: "/workspaces/ws1/files?path=gone", execFn: exit(3, "", ""),
			wantStatus: 404, wantBody: detail("File not found: gone"),
			wantExec: dev(`[ -e 'gone' ] || [ -L 'gone' ] || exit 3; rm -rf -- 'gone'`, "")},
		{name: "delete fails", method: "DELETE", path: "/workspaces/ws1/files?path=/etc", execFn: exit(1, "", "rm: cannot remove '/etc/passwd': Permission denied\n"),
			wantStatus: 500, wantBody: detail("Failed to delete file: rm: cannot remove '/etc/passwd': Permission denied\n"),
			wantExec: dev(`[ -e '/etc' ] || [ -L '/etc' ] || exit 3; rm -rf -- '/etc'`, "")},
		{name: "delete in a stopped workspace", method: "DELETE", path: "/workspaces/ws1/files?path=x", syncStatus: fleet.StatusStopped,
			execFn: notRunning, wantStatus: 500, wantBody: detail("Failed to delete file: Workspace is not running (status: stopped)"),
			wantExec: dev(`[ -e 'x' ] || [ -L 'x' ] || exit 3; rm -rf -- 'x'`, "")},
		{name: "delete without path", method: "DELETE", path: "/workspaces/ws1/files", wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["query","path"],"msg":"Field required","input":null}]}`},
		{name: "delete someone else's file", method: "DELETE", path: "/workspaces/bobs/files?path=x", wantStatus: 403,
			wantBody: detail("Not authorized to access this workspace")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob := aliceWS()
			bob.ID, bob.UserID = "bobs", "bob"
			f := newFake(aliceWS(), bob)
			f.syncStatus, f.execFn = tt.syncStatus, tt.execFn
			rec := req{method: tt.method, path: tt.path, body: tt.body}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			var want []orchestrator.ExecRequest
			if tt.wantExec != nil {
				want = append(want, *tt.wantExec)
			}
			if diff := cmp.Diff(want, f.execs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("exec requests (-want +got):\n%s", diff)
			}
		})
	}
}

// nastyPaths are names a caller could send; each must reach the command as
// exactly one literal word.
var nastyPaths = []string{
	"plain", "with space", "two  spaces", "it's", "'", "''", `"double"`, "$(touch pwned)", "`touch pwned`",
	"${HOME}", "$HOME", "a;touch pwned", "a&&touch pwned", "a|cat", "back\\slash", "new\nline", "tab\there",
	"*", "?", "[a]", "-rf", "--", "!!", "~", "ünïcödé ✓", "",
}

func TestShellQuoteInBash(t *testing.T) {
	bash := lookBash(t)
	for _, p := range nastyPaths {
		t.Run(fmt.Sprintf("%q", p), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bash, "-c", "printf '%s' "+shellQuote(p))
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v: %s", err, out)
			}
			if got := string(out); got != p {
				t.Errorf("got %q, want %q", got, p)
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Error("the path ran a command")
			}
		})
	}
}

// TestFileCommandsInBash runs the write, read, list and delete commands
// for awkward names in a real shell, in a temporary home.
func TestFileCommandsInBash(t *testing.T) {
	bash := lookBash(t)
	run := func(t *testing.T, dir, command string, stdin []byte) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bash, "-c", command)
		cmd.Dir = dir
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("bash: %v", err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	for _, name := range []string{"plain.txt", "sub dir/it's $(touch pwned).txt", "deep/er/new\nline", "-dash", "a  b"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			dir := t.TempDir()
			content := []byte("line 1\n'quoted' $(not run)\n")
			if code, _, stderr := run(t, dir, writeCommand(name), content); code != 0 {
				t.Fatalf("write: exit %d: %s", code, stderr)
			}
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("written file: got %q (%v), want %q", got, err, content)
			}
			if code, stdout, stderr := run(t, dir, readCommand(name), nil); code != 0 || stdout != string(content) {
				t.Errorf("read: got exit %d, %q (%s), want 0, %q", code, stdout, stderr, content)
			}
			parent := filepath.Dir(name)
			_, stdout, _ := run(t, dir, listCommand(parent), nil)
			entries := parseListing(stdout)
			wantName := strings.Join(strings.Fields(filepath.Base(name)), " ")
			if !strings.Contains(name, "\n") && !containsEntry(entries, fileEntry{Name: wantName, Type: "file", Size: fmt.Sprint(len(content))}) {
				t.Errorf("listing of %q: got %+v, want it to hold %q", parent, entries, wantName)
			}
			if !slices.ContainsFunc(entries, func(e fileEntry) bool { return e.Name == "." && e.Type == "directory" }) {
				t.Errorf("listing of %q: got %+v, want it to hold .", parent, entries)
			}
			if code, _, stderr := run(t, dir, deleteCommand(name), nil); code != 0 {
				t.Fatalf("delete: exit %d: %s", code, stderr)
			}
			if _, err := os.Lstat(filepath.Join(dir, name)); !os.IsNotExist(err) {
				t.Errorf("after delete: %v, want not exist", err)
			}
			if code, _, _ := run(t, dir, deleteCommand(name), nil); code != exitNoSuchPath {
				t.Errorf("delete again: got exit %d, want %d", code, exitNoSuchPath)
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Error("a name ran a command")
			}
		})
	}
	t.Run("list a missing directory", func(t *testing.T) {
		code, stdout, _ := run(t, t.TempDir(), listCommand("nope"), nil)
		if code == 0 || len(parseListing(stdout)) != 0 {
			t.Errorf("got exit %d, entries %v; want a failure and none", code, parseListing(stdout))
		}
	})
	t.Run("delete a dangling symlink", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink("missing-target", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := run(t, dir, deleteCommand("link"), nil); code != 0 {
			t.Fatalf("got exit %d (%s), want 0", code, stderr)
		}
	})
}

func containsEntry(entries []fileEntry, want fileEntry) bool { return slices.Contains(entries, want) }

func lookBash(t *testing.T) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	return bash
}
