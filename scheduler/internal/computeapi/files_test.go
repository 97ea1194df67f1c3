package computeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/shared/wire"
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
	devTimeout := func(cmd, stdin string, timeout time.Duration) *orchestrator.ExecRequest {
		r := devExec(cmd, nil, timeout)
		if stdin != "" {
			r.Stdin = []byte(stdin)
		}
		return &r
	}
	dev := func(cmd, stdin string) *orchestrator.ExecRequest { return devTimeout(cmd, stdin, 30*time.Second) }
	check := func(path string) *orchestrator.ExecRequest { return dev(readCheckCommand(path, DefaultFileLimit), "") }
	type rawFunc = func(context.Context, orchestrator.ExecRequest, io.Reader, io.Writer) (orchestrator.ExecResult, error)
	output := func(out string) rawFunc {
		return func(_ context.Context, _ orchestrator.ExecRequest, _ io.Reader, stdout io.Writer) (orchestrator.ExecResult, error) {
			_, err := io.WriteString(stdout, out)
			return orchestrator.ExecResult{}, err
		}
	}
	rawExit := func(code int, stderr string) rawFunc {
		return func(_ context.Context, _ orchestrator.ExecRequest, stdin io.Reader, _ io.Writer) (orchestrator.ExecResult, error) {
			_, _ = io.Copy(io.Discard, stdin)
			return orchestrator.ExecResult{ExitCode: code, Stderr: []byte(stderr)}, nil
		}
	}
	rawErr := func(err error) rawFunc {
		return func(_ context.Context, _ orchestrator.ExecRequest, stdin io.Reader, _ io.Writer) (orchestrator.ExecResult, error) {
			_, _ = io.Copy(io.Discard, stdin)
			return orchestrator.ExecResult{}, err
		}
	}
	tests := []struct {
		name       string
		method     string
		path, body string
		header     map[string]string
		syncStatus fleet.Status
		execFn     func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)
		rawFn      rawFunc
		wantStatus int
		wantBody   string
		wantExec   *orchestrator.ExecRequest
		wantRaw    []rawCall
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

		{name: "read", method: "GET", path: "/workspaces/ws1/files/content?path=src/a.go", execFn: exit(0, "10\n", ""),
			rawFn: output("package a\n"), wantStatus: 200, wantBody: `{"path":"src/a.go","content":"package a\n"}`,
			wantExec: check("src/a.go"), wantRaw: []rawCall{{Req: *dev(`cat -- 'src/a.go'`, "")}}},
		{name: "read an absolute path", method: "GET", path: "/workspaces/ws1/files/content?path=/etc/hostname", execFn: exit(0, "3\n", ""),
			rawFn: output("ws\n"), wantStatus: 200, wantBody: `{"path":"/etc/hostname","content":"ws\n"}`,
			wantExec: check("/etc/hostname"), wantRaw: []rawCall{{Req: *dev(`cat -- '/etc/hostname'`, "")}}},
		{name: "read a missing file", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			execFn: exit(1, "", "cat: x: No such file or directory\n"), wantStatus: 404,
			wantBody: detail("Failed to read file: cat: x: No such file or directory\n"), wantExec: check("x")},
		{name: "read from a stopped workspace", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			syncStatus: fleet.StatusStopped, execFn: notRunning, wantStatus: 404,
			wantBody: detail("Failed to read file: Workspace is not running (status: stopped)"), wantExec: check("x")},
		{name: "read a binary file", method: "GET", path: "/workspaces/ws1/files/content?path=b", execFn: exit(exitNotText, "4\n0  89\n", ""),
			wantStatus: 404, wantBody: detail("Failed to read file: output is not valid UTF-8 (byte 0x89 at offset 0)"),
			wantExec: check("b")},
		{name: "read check without a size", method: "GET", path: "/workspaces/ws1/files/content?path=b", execFn: exit(0, "", ""),
			wantStatus: 404, wantBody: detail("Failed to read file: the file's size could not be read"), wantExec: check("b")},
		{name: "read check: not text, without where", method: "GET", path: "/workspaces/ws1/files/content?path=b", execFn: exit(exitNotText, "4\n", ""),
			wantStatus: 404, wantBody: detail("Failed to read file: output is not valid UTF-8"), wantExec: check("b")},
		{name: "read a file above the limit", method: "GET", path: "/workspaces/ws1/files/content?path=big", execFn: exit(0, "104857601\n", ""),
			wantStatus: 413, wantBody: detail("File too large: 104857601 bytes; the limit is 104857600 bytes (100 MiB)"),
			wantExec: check("big")},
		{name: "read a file at the limit", method: "GET", path: "/workspaces/ws1/files/content?path=big", execFn: exit(0, "104857600\n", ""),
			rawFn: output(""), wantStatus: 200, wantBody: `{"path":"big","content":""}`, wantExec: check("big"),
			wantRaw: []rawCall{{Req: *devTimeout(`cat -- 'big'`, "", 130*time.Second)}}},
		{name: "read a file that stopped being text after the check", method: "GET", path: "/workspaces/ws1/files/content?path=b",
			execFn: exit(0, "4\n", ""), rawFn: output("\x89PNG"), wantStatus: 404,
			wantBody: detail("Failed to read file: output is not valid UTF-8 (byte 0x89 at offset 0)"),
			wantExec: check("b"), wantRaw: []rawCall{{Req: *dev(`cat -- 'b'`, "")}}},
		{name: "read: cat fails before any output", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			execFn: exit(0, "4\n", ""), rawFn: rawExit(1, "cat: x: Input/output error\n"), wantStatus: 404,
			wantBody: detail("Failed to read file: cat: x: Input/output error\n"),
			wantExec: check("x"), wantRaw: []rawCall{{Req: *dev(`cat -- 'x'`, "")}}},
		{name: "read: the agent unreachable", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			execFn: exit(0, "4\n", ""), rawFn: rawErr(fmt.Errorf("%w: %w", orchestrator.ErrServerUnavailable, agentclient.ErrUnreachable)),
			wantStatus: 404, wantBody: detail("Failed to read file: Server not available"),
			wantExec: check("x"), wantRaw: []rawCall{{Req: *dev(`cat -- 'x'`, "")}}},
		{name: "read: the agent failed, in stable words", method: "GET", path: "/workspaces/ws1/files/content?path=x",
			execFn: exit(0, "4\n", ""), rawFn: rawErr(&agentclient.Error{Status: 400, Code: wire.CodeBadRequest, Message: "invalid JSON body: unexpected EOF"}),
			wantStatus: 404, wantBody: detail("Failed to read file: Command execution failed: internal error"),
			wantExec: check("x"), wantRaw: []rawCall{{Req: *dev(`cat -- 'x'`, "")}}},
		{name: "read without path", method: "GET", path: "/workspaces/ws1/files/content", wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["query","path"],"msg":"Field required","input":null}]}`},

		{name: "write", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"a/b c.txt","content":"hi\n"}`,
			wantStatus: 204,
			wantRaw:    []rawCall{{Req: *dev(`mkdir -p -- "$(dirname -- 'a/b c.txt')" && cat > 'a/b c.txt'`, ""), Size: 3, Stdin: "hi\n"}}},
		{name: "write, members the other way round and one more", method: "PUT", path: "/workspaces/ws1/files/content",
			body: `{"mode": 420, "content":"h\u00e9\ud83d\ude00\n", "path":"f"}`, wantStatus: 204,
			wantRaw: []rawCall{{Req: *dev(`mkdir -p -- "$(dirname -- 'f')" && cat > 'f'`, ""), Size: 8, Stdin: "hé😀\n"}}},
		{name: "write empty content", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"e","content":""}`,
			wantStatus: 204, wantRaw: []rawCall{{Req: *dev(`mkdir -p -- "$(dirname -- 'e')" && cat > 'e'`, "")}}},
		{name: "write null content", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"e","content":null}`,
			wantStatus: 400, wantBody: detail("Content is required")},
		{name: "write without content", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"e"}`,
			wantStatus: 400, wantBody: detail("Content is required")},
		{name: "write without path", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"content":"x"}`,
			wantStatus: 422, wantBody: `{"detail":[{"type":"missing","loc":["body","path"],"msg":"Field required","input":{"content":"x"}}]}`},
		{name: "write fails", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"/root/x","content":"x"}`,
			rawFn: rawExit(1, "bash: /root/x: Permission denied\n"), wantStatus: 404,
			wantBody: detail("Failed to write file: bash: /root/x: Permission denied\n"),
			wantRaw:  []rawCall{{Req: *dev(`mkdir -p -- "$(dirname -- '/root/x')" && cat > '/root/x'`, ""), Size: 1, Stdin: "x"}}},
		{name: "write: the agent unreachable", method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"x","content":"x"}`,
			rawFn: rawErr(fmt.Errorf("%w: %w", orchestrator.ErrServerUnavailable, agentclient.ErrUnreachable)), wantStatus: 404,
			wantBody: detail("Failed to write file: Server not available"),
			wantRaw:  []rawCall{{Req: *dev(`mkdir -p -- "$(dirname -- 'x')" && cat > 'x'`, ""), Size: 1, Stdin: "x"}}},
		{name: "write someone else's file: the body first, then the owner", method: "PUT", path: "/workspaces/bobs/files/content",
			body: `{"path":"x","content":"x"}`, wantStatus: 403, wantBody: detail("Not authorized to access this workspace")},
		{name: "write without the user header: before the body", method: "PUT", path: "/workspaces/ws1/files/content",
			body: `{"path":`, header: map[string]string{headerUserID: ""}, wantStatus: 401, wantBody: detail("Missing user ID header")},
		{name: "write with a bad token: before the body", method: "PUT", path: "/workspaces/ws1/files/content",
			body: `{"path":`, header: map[string]string{headerServiceToken: "nope"}, wantStatus: 401, wantBody: detail("Invalid service token")},

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
			f.syncStatus, f.execFn, f.rawFn = tt.syncStatus, tt.execFn, tt.rawFn
			rec := req{method: tt.method, path: tt.path, body: tt.body, header: tt.header}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			var want []orchestrator.ExecRequest
			if tt.wantExec != nil {
				want = append(want, *tt.wantExec)
			}
			if diff := cmp.Diff(want, f.execs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("exec requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRaw, f.raws, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("raw exec requests (-want +got):\n%s", diff)
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

// shellFake makes f run its execs in a real bash in dir, as the container
// would (user and working directory aside): Exec with its input in memory,
// ExecRaw with input and output streamed, its output writer's failure
// returned as the agent client returns it.
func shellFake(t *testing.T, f *fakeWorkspaces, dir string) {
	t.Helper()
	bash := lookBash(t)
	for _, tool := range []string{"iconv", "stat", "od", "tail", "head", "wc", "mkfifo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	run := func(ctx context.Context, command string, stdin io.Reader, stdout io.Writer) (orchestrator.ExecResult, error) {
		cmd := exec.CommandContext(ctx, bash, "-c", command)
		cmd.Dir, cmd.Stdin = dir, stdin
		out := &recordingWriter{w: stdout}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = out, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case out.err != nil:
			return orchestrator.ExecResult{}, fmt.Errorf("raw exec output: %w", out.err)
		case errors.As(err, &ee):
			return orchestrator.ExecResult{ExitCode: ee.ExitCode(), Stderr: stderr.Bytes()}, nil
		case err != nil:
			t.Errorf("bash: %v", err)
		}
		return orchestrator.ExecResult{Stderr: stderr.Bytes()}, err
	}
	f.execFn = func(req orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		var stdout bytes.Buffer
		res, err := run(context.Background(), req.Command, bytes.NewReader(req.Stdin), &stdout)
		res.Stdout = stdout.Bytes()
		return res, err
	}
	f.rawFn = func(ctx context.Context, req orchestrator.ExecRequest, stdin io.Reader, stdout io.Writer) (orchestrator.ExecResult, error) {
		if stdout == nil {
			stdout = io.Discard
		}
		return run(ctx, req.Command, stdin, stdout)
	}
}

// recordingWriter keeps its writer's first error.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// TestFileRoutesInBash writes and reads files through the routes with
// their real commands in a real shell: contents round-trip byte for byte,
// and the read check words the failures as the contract wants.
func TestFileRoutesInBash(t *testing.T) {
	const limit = 4 << 20
	dir := t.TempDir()
	f := newFake(aliceWS())
	shellFake(t, f, dir)
	spoolDir := t.TempDir()
	e := newTestEchoDeps(Deps{Workspaces: f, ServiceToken: testToken, FileLimit: limit, SpoolDir: spoolDir})
	write := func(t *testing.T, path, content string) *httptest.ResponseRecorder {
		t.Helper()
		body, err := json.Marshal(map[string]string{"path": path, "content": content})
		if err != nil {
			t.Fatal(err)
		}
		return req{method: "PUT", path: "/workspaces/ws1/files/content", body: string(body)}.send(e)
	}
	read := func(t *testing.T, path string) *httptest.ResponseRecorder {
		t.Helper()
		return req{method: "GET", path: "/workspaces/ws1/files/content?path=" + url.QueryEscape(path)}.send(e)
	}

	t.Run("round trips", func(t *testing.T) {
		big := strings.Repeat("a line of \"text\" with é, € and 😀\t\\\n", 3<<20/40) // 3 MiB: spooled to disk
		for name, content := range map[string]string{
			"empty": "", "plain": "hello\n", "no newline at the end": "x",
			"controls and escapes": "\x00\x01\b\f\n\r\t\x1f\x7f\"\\/<>&", "separators": "\u2028\u2029",
			"every length of character": "é€😀\U0010FFFF", "replacement character": "\uFFFD", "big": big,
			"exactly the limit": strings.Repeat("z", limit),
		} {
			t.Run(name, func(t *testing.T) {
				path := "sub dir/" + strings.ReplaceAll(name, " ", "_") + ".txt"
				if rec := write(t, path, content); rec.Code != http.StatusNoContent {
					t.Fatalf("write: got %d %s", rec.Code, rec.Body)
				}
				if got, err := os.ReadFile(filepath.Join(dir, path)); err != nil || string(got) != content {
					t.Fatalf("file on disk: %d bytes (%v), want the %d written", len(got), err, len(content))
				}
				rec := read(t, path)
				var got struct{ Path, Content string }
				if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != http.StatusOK || err != nil {
					t.Fatalf("read: got %d (%v) %.200s", rec.Code, err, rec.Body)
				}
				if got.Path != path || got.Content != content {
					t.Errorf("read back %q and %d bytes, want %q and %d", got.Path, len(got.Content), path, len(content))
				}
				if want := marshalString(content); len(content) < 1<<20 && !strings.Contains(rec.Body.String(), want) {
					t.Errorf("read: content not escaped as encoding/json escapes it: %.300s", rec.Body)
				}
			})
		}
		if entries, _ := os.ReadDir(spoolDir); len(entries) != 0 {
			t.Errorf("spool dir holds %v after the writes", entries)
		}
	})

	if err := os.WriteFile(filepath.Join(dir, "binary"), []byte("ok\n\xffmore"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cut"), []byte("ab€\xe2\x82"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "too big"), bytes.Repeat([]byte("y"), limit+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mkfifo", filepath.Join(dir, "fifo")).Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("binary", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		wantStatus int
		wantBody   string
	}{
		{"missing", "missing.txt", 404, detail("Failed to read file: cat: missing.txt: No such file or directory\n")},
		{"a directory", "a dir", 404, detail("Failed to read file: cat: 'a dir': Is a directory\n")},
		{"a FIFO", "fifo", 404, detail("Failed to read file: fifo: not a regular file\n")},
		{"not UTF-8", "binary", 404, detail("Failed to read file: output is not valid UTF-8 (byte 0xff at offset 3)")},
		{"not UTF-8 through a symlink", "link", 404, detail("Failed to read file: output is not valid UTF-8 (byte 0xff at offset 3)")},
		{"a character cut by the end", "cut", 404, detail("Failed to read file: output is not valid UTF-8 (byte 0xe2 at offset 5)")},
		{"above the limit", "too big", 413, detail("File too large: 4194305 bytes; the limit is 4194304 bytes (4 MiB)")},
	}
	for _, tt := range tests {
		t.Run("read "+tt.name, func(t *testing.T) {
			checkJSON(t, read(t, tt.path), tt.wantStatus, tt.wantBody)
		})
	}
	t.Run("write above the limit", func(t *testing.T) {
		before := len(f.raws)
		checkJSON(t, write(t, "over", strings.Repeat("y", limit+1)), 413,
			detail("File too large: 4194305 bytes; the limit is 4194304 bytes (4 MiB)"))
		if _, err := os.Stat(filepath.Join(dir, "over")); !os.IsNotExist(err) || len(f.raws) != before {
			t.Errorf("the refused write reached the workspace: %v, %d raw execs", err, len(f.raws)-before)
		}
	})
	t.Run("write under a file", func(t *testing.T) {
		rec := write(t, "binary/x", "x")
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "Failed to write file: mkdir: ") {
			t.Errorf("got %d %s, want 404 Failed to write file: mkdir: …", rec.Code, rec.Body)
		}
	})
	t.Run("a broken write body never touches the file", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "kept"), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		rec := req{method: "PUT", path: "/workspaces/ws1/files/content", body: `{"path":"kept","content":"new` + strings.Repeat("x", 2<<20)}.send(e)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("got %d %.200s, want 422", rec.Code, rec.Body)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "kept")); string(got) != "old" {
			t.Errorf("file now holds %.20q, want it untouched", got)
		}
	})
}

// TestReadFileAborts streams reads over a real connection: once the 200
// has started, a file that stops being text, grows past the limit or
// fails, or an agent that fails, ends the connection without completing
// the answer, so no caller takes a cut file for the whole one.
func TestReadFileAborts(t *testing.T) {
	type rawFunc = func(context.Context, orchestrator.ExecRequest, io.Reader, io.Writer) (orchestrator.ExecResult, error)
	writeThen := func(first string, then func(io.Writer) (orchestrator.ExecResult, error)) rawFunc {
		return func(_ context.Context, _ orchestrator.ExecRequest, _ io.Reader, stdout io.Writer) (orchestrator.ExecResult, error) {
			if _, err := io.WriteString(stdout, first); err != nil {
				return orchestrator.ExecResult{}, err
			}
			return then(stdout)
		}
	}
	more := func(s string) func(io.Writer) (orchestrator.ExecResult, error) {
		return func(w io.Writer) (orchestrator.ExecResult, error) {
			_, err := io.WriteString(w, s)
			return orchestrator.ExecResult{}, err
		}
	}
	tests := []struct {
		name    string
		rawFn   rawFunc
		wantErr bool
	}{
		{"whole", writeThen("good ", more("text")), false},
		{"stops being text", writeThen("good ", more("\xff")), true},
		{"ends inside a character", writeThen("good ", more("\xe2\x82")), true},
		{"stops being text after the answer's head went out", writeThen(strings.Repeat("x", 40<<10), more("\xff")), true},
		{"grows past the limit", writeThen(strings.Repeat("x", 60<<10), more(strings.Repeat("x", 50<<10))), true},
		{"cat fails midway", writeThen("good ", func(io.Writer) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{ExitCode: 1, Stderr: []byte("cat: f: Input/output error\n")}, nil
		}), true},
		{"times out midway", writeThen("good ", func(io.Writer) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{ExitCode: 124, TimedOut: true}, nil
		}), true},
		{"the agent's stream breaks", writeThen("good ", func(io.Writer) (orchestrator.ExecResult, error) {
			return orchestrator.ExecResult{}, fmt.Errorf("%w: %w", orchestrator.ErrServerUnavailable, agentclient.ErrUnreachable)
		}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.execFn = func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
				return orchestrator.ExecResult{Stdout: []byte("9\n")}, nil
			}
			f.rawFn = tt.rawFn
			srv := httptest.NewServer(newTestEchoDeps(Deps{Workspaces: f, ServiceToken: testToken, FileLimit: 100 << 10}))
			defer srv.Close()
			hr, _ := http.NewRequest(http.MethodGet, srv.URL+"/workspaces/ws1/files/content?path=f", nil)
			hr.Header.Set(headerUserID, "alice")
			hr.Header.Set(headerServiceToken, testToken)
			resp, err := srv.Client().Do(hr)
			if err != nil && tt.wantErr {
				return // cut before the answer's head was even sent
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %s, want the 200 started", resp.StatusCode, body)
			}
			if tt.wantErr {
				if err == nil || json.Valid(body) {
					t.Errorf("got a complete answer %q (%v), want the connection cut", body, err)
				}
				return
			}
			if err != nil || string(body) != `{"path":"f","content":"good text"}` {
				t.Errorf("got %q, %v", body, err)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
		})
	}
}
