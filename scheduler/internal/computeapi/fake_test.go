package computeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

const testToken = "s3cret-token"

// fakeWorkspaces is a hand-written Workspaces. Records live in ws; the
// knobs make the next calls fail or answer in a given way; calls records
// what the API asked for.
type fakeWorkspaces struct {
	mu sync.Mutex
	ws map[string]registry.Workspace

	createErr  error
	syncStatus fleet.Status // when set, Sync reports this status
	syncErr    error
	listErr    error
	opErr      map[string]error // by method: Stop, Restart, Delete, MarkForDeletion, Heartbeat
	goneAfter  string           // the method after which the record disappears
	execFn     func(req orchestrator.ExecRequest) (orchestrator.ExecResult, error)
	streamFn   func(ctx context.Context, req orchestrator.ExecRequest, onOutput func(string, []byte) error) (orchestrator.ExecResult, error)
	rawFn      func(ctx context.Context, req orchestrator.ExecRequest, stdin io.Reader, stdout io.Writer) (orchestrator.ExecResult, error)
	activity   map[string]int // NoteActivity calls by workspace
	stats      wire.ContainerStats
	statsErr   error
	options    orchestrator.ScaleOptions
	scaleRes   orchestrator.ScaleResult
	scaleErr   error
	term       *fakeTerminal // OpenTerminal, KillTerminalSession (terminal_test.go)
	app        *fakeApp      // AppProxy, DialApp (proxy_test.go); nil: no app

	creates []orchestrator.CreateRequest
	execs   []orchestrator.ExecRequest
	raws    []rawCall // ExecRaw calls
	calls   []string  // "Method id"
	lists   [][2]string
	scales  []string // tiers asked for
}

func newFake(wss ...registry.Workspace) *fakeWorkspaces {
	f := &fakeWorkspaces{ws: map[string]registry.Workspace{}, opErr: map[string]error{}}
	for _, w := range wss {
		f.ws[w.ID] = w
	}
	return f
}

func (f *fakeWorkspaces) record(method, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method+" "+id)
	if f.goneAfter == method {
		delete(f.ws, id)
	}
	return f.opErr[method]
}

func (f *fakeWorkspaces) Create(_ context.Context, req orchestrator.CreateRequest) (registry.Workspace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, req)
	if f.createErr != nil {
		return registry.Workspace{}, f.createErr
	}
	if req.WorkspaceID == "" {
		req.WorkspaceID = "generated-id"
	}
	if w, ok := f.ws[req.WorkspaceID]; ok { // idempotent, like the orchestrator
		if w.UserID != req.UserID {
			return registry.Workspace{}, orchestrator.ErrOwnedByOther
		}
		return w, nil
	}
	w := registry.Workspace{
		ID: req.WorkspaceID, UserID: req.UserID, SessionID: req.SessionID, Status: fleet.StatusRunning,
		Tier: req.Config.Tier, Host: "host-a", Port: registry.DefaultPort, ServerID: "srv-1", ContainerID: "ctr-new",
		CreatedAt: t0, LastActivity: t0, Image: "podex/workspace:latest",
		Repositories: req.Config.Repos, Environment: req.Config.Environment, Settings: req.Config.Settings,
	}
	f.ws[w.ID] = w
	return w, nil
}

func (f *fakeWorkspaces) Get(_ context.Context, id string) (registry.Workspace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.ws[id]
	if !ok {
		return registry.Workspace{}, orchestrator.ErrNotFound
	}
	return w, nil
}

func (f *fakeWorkspaces) Sync(_ context.Context, w registry.Workspace) (registry.Workspace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Sync "+w.ID)
	if f.syncErr != nil {
		return registry.Workspace{}, f.syncErr
	}
	if f.syncStatus != "" {
		w.Status = f.syncStatus
		f.ws[w.ID] = w
	}
	return w, nil
}

func (f *fakeWorkspaces) List(_ context.Context, userID, sessionID string) ([]registry.Workspace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, [2]string{userID, sessionID})
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []registry.Workspace
	for _, id := range sortedKeys(f.ws) {
		w := f.ws[id]
		if w.UserID == userID && (sessionID == "" || w.SessionID == sessionID) {
			out = append(out, w)
		}
	}
	return out, nil
}

func (f *fakeWorkspaces) Stop(_ context.Context, w registry.Workspace) error {
	return f.record("Stop", w.ID)
}

func (f *fakeWorkspaces) Restart(_ context.Context, w registry.Workspace) error {
	return f.record("Restart", w.ID)
}

func (f *fakeWorkspaces) Delete(_ context.Context, w registry.Workspace) error {
	return f.record("Delete", w.ID)
}

// MarkHomeForDeletion finds no home unless opErr gives its answer.
func (f *fakeWorkspaces) MarkHomeForDeletion(context.Context, string, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.opErr["MarkHomeForDeletion"]; ok {
		return err
	}
	return orchestrator.ErrNotFound
}

func (f *fakeWorkspaces) MarkForDeletion(_ context.Context, w registry.Workspace) error {
	return f.record("MarkForDeletion", w.ID)
}

func (f *fakeWorkspaces) NoteActivity(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.activity == nil {
		f.activity = map[string]int{}
	}
	f.activity[id]++
}

// activityOf is how many times the streams noted use of a workspace.
func (f *fakeWorkspaces) activityOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.activity[id]
}

func (f *fakeWorkspaces) Heartbeat(_ context.Context, w registry.Workspace) error {
	return f.record("Heartbeat", w.ID)
}

func (f *fakeWorkspaces) Exec(_ context.Context, w registry.Workspace, req orchestrator.ExecRequest) (orchestrator.ExecResult, error) {
	_ = f.record("Exec", w.ID)
	f.mu.Lock()
	f.execs = append(f.execs, req)
	fn := f.execFn
	f.mu.Unlock()
	if fn == nil {
		return orchestrator.ExecResult{}, nil
	}
	return fn(req)
}

func (f *fakeWorkspaces) ExecStream(ctx context.Context, w registry.Workspace, req orchestrator.ExecRequest, onOutput func(string, []byte) error) (orchestrator.ExecResult, error) {
	_ = f.record("ExecStream", w.ID)
	f.mu.Lock()
	f.execs = append(f.execs, req)
	fn, execFn := f.streamFn, f.execFn
	f.mu.Unlock()
	if fn == nil && execFn != nil {
		fn = streamOf(execFn)
	}
	if fn == nil {
		return orchestrator.ExecResult{}, nil
	}
	return fn(ctx, req, onOutput)
}

// streamOf streams an Exec answer: its stdout, then its stderr, each in
// one chunk, then the result without them (the dropped counts kept).
func streamOf(execFn func(orchestrator.ExecRequest) (orchestrator.ExecResult, error)) func(context.Context, orchestrator.ExecRequest, func(string, []byte) error) (orchestrator.ExecResult, error) {
	return func(_ context.Context, req orchestrator.ExecRequest, onOutput func(string, []byte) error) (orchestrator.ExecResult, error) {
		res, err := execFn(req)
		if err != nil {
			return orchestrator.ExecResult{}, err
		}
		for _, o := range []struct {
			stream string
			data   []byte
		}{{"stdout", res.Stdout}, {"stderr", res.Stderr}} {
			if len(o.data) > 0 {
				if err := onOutput(o.stream, append([]byte(nil), o.data...)); err != nil {
					return orchestrator.ExecResult{}, err
				}
			}
		}
		res.Stdout, res.Stderr = nil, nil
		return res, nil
	}
}

// rawCall is one ExecRaw: its request, and its input's declared size and
// bytes (as far as rawFn read them; all of them without a rawFn).
type rawCall struct {
	Req   orchestrator.ExecRequest
	Size  int64
	Stdin string
}

// ExecRaw answers from rawFn; without one, it reads the input and exits 0
// with no output.
func (f *fakeWorkspaces) ExecRaw(ctx context.Context, w registry.Workspace, req orchestrator.ExecRequest, stdin io.Reader, size int64, stdout io.Writer) (orchestrator.ExecResult, error) {
	_ = f.record("ExecRaw", w.ID)
	f.mu.Lock()
	fn := f.rawFn
	f.mu.Unlock()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	in := &bytes.Buffer{}
	stdin = io.TeeReader(stdin, in)
	defer func() {
		f.mu.Lock()
		f.raws = append(f.raws, rawCall{Req: req, Size: size, Stdin: in.String()})
		f.mu.Unlock()
	}()
	if fn == nil {
		_, err := io.Copy(io.Discard, stdin)
		return orchestrator.ExecResult{}, err
	}
	return fn(ctx, req, stdin, stdout)
}

func (f *fakeWorkspaces) Resources(_ context.Context, w registry.Workspace) (wire.ContainerStats, error) {
	_ = f.record("Resources", w.ID)
	return f.stats, f.statsErr
}

func (f *fakeWorkspaces) ScaleOptions(_ context.Context, w registry.Workspace) (orchestrator.ScaleOptions, error) {
	err := f.record("ScaleOptions", w.ID)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.options, err
}

func (f *fakeWorkspaces) Scale(_ context.Context, w registry.Workspace, newTier string) (orchestrator.ScaleResult, error) {
	_ = f.record("Scale", w.ID)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales = append(f.scales, newTier)
	return f.scaleRes, f.scaleErr
}

// Fixtures.

var t0 = time.Date(2026, 1, 5, 10, 11, 12, 345678000, time.UTC)

// aliceWS is alice's running workspace ws1.
func aliceWS() registry.Workspace {
	return registry.Workspace{
		ID: "ws1", UserID: "alice", SessionID: "sess-1", Status: fleet.StatusRunning, Tier: "starter",
		Host: "host-a", Port: 8080, ServerID: "srv-1", ContainerID: "ctr-1",
		CreatedAt: t0, LastActivity: time.Date(2026, 1, 5, 11, 0, 0, 0, time.UTC),
		Metadata: map[string]any{"stale_discovery": true}, Image: "podex/workspace:latest",
		Repositories: []string{"https://github.com/a/b"},
		Environment:  map[string]string{"GITHUB_TOKEN": "ghp_x", "ENABLE_SSHD": "true"},
	}
}

// aliceJSON is aliceWS as WorkspaceInfo.
const aliceJSON = `{"id":"ws1","user_id":"alice","session_id":"sess-1","status":"running","tier":"starter",
	"host":"host-a","port":8080,"server_id":"srv-1","container_id":"ctr-1","repos":[],
	"created_at":"2026-01-05T10:11:12.345678Z","last_activity":"2026-01-05T11:00:00Z",
	"metadata":{"stale_discovery":true},"auth_token":null,"image":"podex/workspace:latest",
	"repositories":["https://github.com/a/b"],"environment":{"GITHUB_TOKEN":"***","ENABLE_SSHD":"true"}}`

// HTTP helpers.

func newTestEcho(f Workspaces, token string) *echo.Echo {
	return newTestEchoDeps(Deps{Workspaces: f, ServiceToken: token, Version: "1.2.3"})
}

// newTestEchoDeps is newTestEcho with any Deps.
func newTestEchoDeps(d Deps) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler
	New(d).Register(e)
	return e
}

// req describes one request; by default it carries alice's id and the
// right token, and a JSON content type when it has a body.
type req struct {
	method, path, body string
	header             map[string]string // "" as a value deletes the header
}

func (r req) send(e *echo.Echo) *httptest.ResponseRecorder {
	var body *strings.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	} else {
		body = strings.NewReader("")
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	hr.Header.Set(headerUserID, "alice")
	hr.Header.Set(headerServiceToken, testToken)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, hr)
	return rec
}

// checkJSON compares the status and the body as JSON values.
func checkJSON(t *testing.T, rec *httptest.ResponseRecorder, wantStatus int, wantBody string) {
	t.Helper()
	if rec.Code != wantStatus {
		t.Errorf("status: got %d, want %d (body %s)", rec.Code, wantStatus, rec.Body.String())
	}
	if wantBody == "" {
		if rec.Body.Len() != 0 {
			t.Errorf("body: got %q, want empty", rec.Body.String())
		}
		return
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type: got %q, want application/json", ct)
	}
	got, want := decodeJSON(t, rec.Body.String()), decodeJSON(t, wantBody)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s\ngot raw: %s", diff, rec.Body.String())
	}
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON %q: %v", s, err)
	}
	return v
}

func detail(s string) string {
	b, _ := json.Marshal(map[string]string{"detail": s})
	return string(b)
}

// --- Terminal (§3.21) -------------------------------------------------------
// OpenTerminal and KillTerminalSession answer f.opErr's error for their
// name, if any, and otherwise hand over to f.term, which terminal_test.go
// builds: real TTY streams to an in-memory terminal behind the real agent
// API (agenttest), and tmux sessions as a set of names.

func (f *fakeWorkspaces) OpenTerminal(ctx context.Context, w registry.Workspace, req orchestrator.TerminalRequest) (*agentclient.TTY, error) {
	if err := f.record("OpenTerminal", w.ID); err != nil {
		return nil, err
	}
	f.mu.Lock()
	term := f.term
	f.mu.Unlock()
	if term == nil {
		return nil, errors.New("fake: no terminal configured")
	}
	return term.open(ctx, w, req)
}

func (f *fakeWorkspaces) KillTerminalSession(_ context.Context, w registry.Workspace, session string) (bool, error) {
	if err := f.record("KillTerminalSession", w.ID); err != nil {
		return false, err
	}
	f.mu.Lock()
	term := f.term
	f.mu.Unlock()
	if term == nil {
		return false, nil
	}
	return term.kill(w, session), nil
}

// --- Preview proxy (§3.20) and WebSocket proxy (§3.22) ----------------------
// AppProxy and DialApp answer f.opErr's error for their name, if any,
// check the record as the orchestrator does (orchestrator.CheckAppTarget),
// then hand over to f.app, which proxy_test.go builds: an app on an
// httptest server, reached directly.

func (f *fakeWorkspaces) AppProxy(_ context.Context, w registry.Workspace, port int, opts agentclient.ProxyOptions) (http.Handler, error) {
	if err := f.record("AppProxy", w.ID); err != nil {
		return nil, err
	}
	if err := orchestrator.CheckAppTarget(w); err != nil {
		return nil, err
	}
	f.mu.Lock()
	app := f.app
	f.mu.Unlock()
	if app == nil {
		return nil, errors.New("fake: no app configured")
	}
	return app.proxy(port, opts), nil
}

func (f *fakeWorkspaces) DialApp(ctx context.Context, w registry.Workspace, port int, path string, subprotocols []string) (*websocket.Conn, error) {
	if err := f.record("DialApp", w.ID); err != nil {
		return nil, err
	}
	if err := orchestrator.CheckAppTarget(w); err != nil {
		return nil, err
	}
	f.mu.Lock()
	app := f.app
	f.mu.Unlock()
	if app == nil {
		return nil, errors.New("fake: no app configured")
	}
	return app.dial(ctx, port, path, subprotocols)
}
