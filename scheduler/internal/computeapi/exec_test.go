package computeapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/shared/wire"
)

func TestExec(t *testing.T) {
	result := func(res orchestrator.ExecResult, err error) func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
		return func(orchestrator.ExecRequest) (orchestrator.ExecResult, error) { return res, err }
	}
	defaultReq := orchestrator.ExecRequest{Command: "ls", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}
	tests := []struct {
		name       string
		body       string
		syncStatus fleet.Status
		execFn     func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)
		wantStatus int
		wantBody   string
		wantReq    *orchestrator.ExecRequest
	}{
		{name: "normal", body: `{"command":"ls"}`,
			execFn:     result(orchestrator.ExecResult{ExitCode: 3, Stdout: []byte("a\nb\n"), Stderr: []byte("warn")}, nil),
			wantStatus: 200, wantBody: `{"exit_code":3,"stdout":"a\nb\n","stderr":"warn"}`, wantReq: &defaultReq},
		{name: "working dir and timeout", body: `{"command":"pwd","working_dir":"/tmp","timeout":5}`,
			execFn: result(orchestrator.ExecResult{Stdout: []byte("/tmp\n")}, nil), wantStatus: 200,
			wantBody: `{"exit_code":0,"stdout":"/tmp\n","stderr":""}`,
			wantReq:  &orchestrator.ExecRequest{Command: "pwd", WorkingDir: "/tmp", Timeout: 5 * time.Second, User: "dev"}},
		{name: "null working dir is the home", body: `{"command":"ls","working_dir":null,"timeout":30}`,
			execFn: result(orchestrator.ExecResult{}, nil), wantStatus: 200,
			wantBody: `{"exit_code":0,"stdout":"","stderr":""}`, wantReq: &defaultReq},
		{name: "no container", body: `{"command":"ls"}`, execFn: result(orchestrator.ExecResult{}, orchestrator.ErrNoContainer),
			wantStatus: 200, wantBody: `{"exit_code":-1,"stdout":"","stderr":"Workspace has no assigned server or container"}`,
			wantReq: &defaultReq},
		{name: "not running, status after the sync", body: `{"command":"ls"}`, syncStatus: fleet.StatusStopped,
			execFn:     result(orchestrator.ExecResult{}, fmt.Errorf("%w (status: stopped)", orchestrator.ErrNotRunning)),
			wantStatus: 200, wantBody: `{"exit_code":-1,"stdout":"","stderr":"Workspace is not running (status: stopped)"}`,
			wantReq: &defaultReq},
		{name: "timeout", body: `{"command":"sleep 99"}`,
			execFn:     result(orchestrator.ExecResult{ExitCode: 137, Stdout: []byte("partial"), TimedOut: true}, nil),
			wantStatus: 200, wantBody: `{"exit_code":124,"stdout":"","stderr":"Command timed out"}`,
			wantReq: &orchestrator.ExecRequest{Command: "sleep 99", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}},
		{name: "server unavailable", body: `{"command":"ls"}`,
			execFn:     result(orchestrator.ExecResult{}, fmt.Errorf("%w: dial tcp: refused", orchestrator.ErrServerUnavailable)),
			wantStatus: 200, wantBody: `{"exit_code":1,"stdout":"","stderr":"Server not available"}`, wantReq: &defaultReq},
		{name: "docker exec failed", body: `{"command":"ls"}`,
			execFn:     result(orchestrator.ExecResult{}, errors.New("exec create: container is paused")),
			wantStatus: 200, wantBody: `{"exit_code":1,"stdout":"","stderr":"Command execution failed: internal error"}`, wantReq: &defaultReq},
		{name: "the agent's text never reaches the caller", body: `{"command":"ls"}`,
			execFn: result(orchestrator.ExecResult{}, &agentclient.Error{Status: 502, Code: wire.CodeDocker,
				Message: "docker error: exec output of 3f2a: read unix @->/var/run/docker.sock: connection reset"}),
			wantStatus: 200, wantBody: `{"exit_code":1,"stdout":"","stderr":"Command execution failed: the container runtime on the workspace's server failed"}`,
			wantReq: &defaultReq},
		{name: "output not UTF-8", body: `{"command":"cat bin"}`,
			execFn:     result(orchestrator.ExecResult{Stdout: []byte("ok\xff")}, nil),
			wantStatus: 200, wantBody: `{"exit_code":1,"stdout":"","stderr":"output is not valid UTF-8 (byte 0xff at offset 2)"}`,
			wantReq: &orchestrator.ExecRequest{Command: "cat bin", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}},
		{name: "stdout cut by the agent is marked on stderr", body: `{"command":"yes"}`,
			execFn:     result(orchestrator.ExecResult{Stdout: []byte("y\ny\n"), StdoutDropped: 4194304}, nil),
			wantStatus: 200, wantBody: `{"exit_code":0,"stdout":"y\ny\n",
				"stderr":"[berth: stdout truncated: 4194304 bytes beyond the 16 MiB limit were not returned]\n"}`,
			wantReq: &orchestrator.ExecRequest{Command: "yes", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}},
		{name: "both cut: the marks are the last lines, after a newline", body: `{"command":"yes"}`,
			execFn: result(orchestrator.ExecResult{ExitCode: 141, Stdout: []byte("y"), StdoutDropped: 1,
				Stderr: []byte("warning"), StderrDropped: 10}, nil),
			wantStatus: 200, wantBody: `{"exit_code":141,"stdout":"y","stderr":"warning\n` +
				`[berth: stdout truncated: 1 bytes beyond the 16 MiB limit were not returned]\n` +
				`[berth: stderr truncated: 10 bytes beyond the 16 MiB limit were not returned]\n"}`,
			wantReq: &orchestrator.ExecRequest{Command: "yes", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}},
		{name: "a cut inside a character drops the character, counted", body: `{"command":"yes"}`,
			execFn:     result(orchestrator.ExecResult{Stdout: []byte("ab\xe2\x82"), StdoutDropped: 1}, nil),
			wantStatus: 200, wantBody: `{"exit_code":0,"stdout":"ab",
				"stderr":"[berth: stdout truncated: 3 bytes beyond the 16 MiB limit were not returned]\n"}`,
			wantReq: &orchestrator.ExecRequest{Command: "yes", WorkingDir: "/home/dev", Timeout: 30 * time.Second, User: "dev"}},
		{name: "command missing", body: `{"working_dir":"/tmp"}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"missing","loc":["body","command"],"msg":"Field required","input":{"working_dir":"/tmp"}}]}`},
		{name: "command not a string", body: `{"command":["ls"]}`, wantStatus: 422,
			wantBody: `{"detail":[{"type":"string_type","loc":["body","command"],"msg":"Input should be a valid string","input":["ls"]}]}`},
		{name: "timeout as a string of digits is fine", body: `{"command":"ls","timeout":"7"}`,
			execFn: result(orchestrator.ExecResult{}, nil), wantStatus: 200, wantBody: `{"exit_code":0,"stdout":"","stderr":""}`,
			wantReq: &orchestrator.ExecRequest{Command: "ls", WorkingDir: "/home/dev", Timeout: 7 * time.Second, User: "dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.syncStatus, f.execFn = tt.syncStatus, tt.execFn
			rec := req{method: "POST", path: "/workspaces/ws1/exec", body: tt.body}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			var want []orchestrator.ExecRequest
			if tt.wantReq != nil {
				want = append(want, *tt.wantReq)
			}
			if diff := cmp.Diff(want, f.execs); diff != "" {
				t.Errorf("exec requests (-want +got):\n%s", diff)
			}
		})
	}
}

// chunks returns a stream function that emits the given (stream, data)
// pairs, then ends with res and err.
func chunks(res orchestrator.ExecResult, err error, out ...[2]string) func(context.Context, orchestrator.ExecRequest, func(string, []byte) error) (orchestrator.ExecResult, error) {
	return func(_ context.Context, _ orchestrator.ExecRequest, onOutput func(string, []byte) error) (orchestrator.ExecResult, error) {
		for _, o := range out {
			if err := onOutput(o[0], []byte(o[1])); err != nil {
				return orchestrator.ExecResult{}, err
			}
		}
		return res, err
	}
}

func TestExecStreamFraming(t *testing.T) {
	tests := []struct {
		name       string
		syncStatus fleet.Status
		stream     func(context.Context, orchestrator.ExecRequest, func(string, []byte) error) (orchestrator.ExecResult, error)
		wantBody   string
	}{
		{name: "chunks, newline escaped",
			stream:   chunks(orchestrator.ExecResult{}, nil, [2]string{"stdout", "hello"}, [2]string{"stdout", "a\nb\n"}, [2]string{"stderr", "oops"}),
			wantBody: "data: hello\n\ndata: a\\nb\\n\n\ndata: oops\n\ndata: [DONE]\n\n"},
		{name: "no output", stream: chunks(orchestrator.ExecResult{ExitCode: 1}, nil),
			wantBody: "data: [DONE]\n\n"},
		{name: "carriage returns are line breaks too",
			stream:   chunks(orchestrator.ExecResult{}, nil, [2]string{"stderr", "10%\r50%\r\n"}),
			wantBody: "data: 10%\\n50%\\n\n\ndata: [DONE]\n\n"},
		{name: "a character split across chunks is sent whole",
			stream:   chunks(orchestrator.ExecResult{}, nil, [2]string{"stdout", "1 \xe2\x82"}, [2]string{"stdout", "\xac 2"}),
			wantBody: "data: 1 \n\ndata: € 2\n\ndata: [DONE]\n\n"},
		{name: "an incomplete character at the end is replaced",
			stream:   chunks(orchestrator.ExecResult{}, nil, [2]string{"stdout", "x\xe2\x82"}),
			wantBody: "data: x\n\ndata: \ufffd\n\ndata: [DONE]\n\n"},
		{name: "timeout after some output",
			stream:   chunks(orchestrator.ExecResult{TimedOut: true}, nil, [2]string{"stdout", "partial"}),
			wantBody: "data: partial\n\ndata: Command timed out\n\ndata: [DONE]\n\n"},
		{name: "not running is a plain chunk, as Python sent it", syncStatus: fleet.StatusStopped,
			stream:   chunks(orchestrator.ExecResult{}, fmt.Errorf("%w (status: stopped)", orchestrator.ErrNotRunning)),
			wantBody: "data: Workspace is not running (status: stopped)\n\ndata: [DONE]\n\n"},
		{name: "no container",
			stream:   chunks(orchestrator.ExecResult{}, orchestrator.ErrNoContainer),
			wantBody: "data: Workspace has no assigned server or container\n\ndata: [DONE]\n\n"},
		{name: "docker failure is an ERROR event",
			stream:   chunks(orchestrator.ExecResult{}, errors.New("exec: boom\nline 2"), [2]string{"stdout", "x"}),
			wantBody: "data: x\n\ndata: ERROR: Command execution failed: internal error\n\ndata: [DONE]\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.syncStatus, f.streamFn = tt.syncStatus, tt.stream
			rec := req{method: "POST", path: "/workspaces/ws1/exec-stream", body: `{"command":"run"}`}.send(newTestEcho(f, testToken))
			if rec.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (%s)", rec.Code, rec.Body)
			}
			wantHeaders := map[string]string{
				"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
				"Connection": "keep-alive", "X-Accel-Buffering": "no",
			}
			for k, want := range wantHeaders {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("header %s: got %q, want %q", k, got, want)
				}
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body:\ngot  %q\nwant %q", got, tt.wantBody)
			}
		})
	}
}

func TestExecStreamErrorsBeforeTheStreamAreJSON(t *testing.T) {
	tests := []struct {
		name       string
		path, body string
		wantStatus int
		wantBody   string
	}{
		{"unknown workspace", "/workspaces/nope/exec-stream", `{"command":"x"}`, 404, detail("Workspace not found")},
		{"bad body", "/workspaces/ws1/exec-stream", `{}`, 422,
			`{"detail":[{"type":"missing","loc":["body","command"],"msg":"Field required","input":{}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			rec := req{method: "POST", path: tt.path, body: tt.body}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
		})
	}
}

// TestExecStreamFlushesEachChunk holds the fake's second chunk back until
// the client has read the first event over a real connection: if the
// first chunk were buffered, the read would never finish.
func TestExecStreamFlushesEachChunk(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	releaseOnce := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseOnce)

	f := newFake(aliceWS())
	f.streamFn = func(ctx context.Context, _ orchestrator.ExecRequest, onOutput func(string, []byte) error) (orchestrator.ExecResult, error) {
		if err := onOutput("stdout", []byte("first")); err != nil {
			return orchestrator.ExecResult{}, err
		}
		select {
		case <-release:
		case <-ctx.Done():
			return orchestrator.ExecResult{}, ctx.Err()
		}
		if err := onOutput("stdout", []byte("second\n")); err != nil {
			return orchestrator.ExecResult{}, err
		}
		if err := onOutput("stderr", []byte("third")); err != nil {
			return orchestrator.ExecResult{}, err
		}
		return orchestrator.ExecResult{}, nil
	}
	srv := httptest.NewServer(newTestEcho(f, testToken))
	defer srv.Close()

	hr, err := http.NewRequest("POST", srv.URL+"/workspaces/ws1/exec-stream", strings.NewReader(`{"command":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set(headerUserID, "alice")
	hr.Header.Set(headerServiceToken, testToken)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)

	first := make(chan string, 1)
	go func() {
		var sb strings.Builder
		for !strings.HasSuffix(sb.String(), "\n\n") {
			line, err := br.ReadString('\n')
			sb.WriteString(line)
			if err != nil {
				break
			}
		}
		first <- sb.String()
	}()
	select {
	case got := <-first:
		if want := "data: first\n\n"; got != want {
			t.Fatalf("first event: got %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first chunk did not reach the client before the second was released: not flushed")
	}

	releaseOnce()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rest), "data: second\\n\n\ndata: third\n\ndata: [DONE]\n\n"; got != want {
		t.Errorf("rest of the stream: got %q, want %q", got, want)
	}
}
