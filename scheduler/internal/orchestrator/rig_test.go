package orchestrator_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	_ "github.com/mattn/go-sqlite3" // the registry's driver, for detachServer

	"berth/agent/agenttest"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

// rig is an orchestrator over a real SQLite file and real agents (the agent
// API over the in-memory Docker, agenttest) reached over real mTLS.
type rig struct {
	t      *testing.T
	db     *registry.DB
	orch   *orchestrator.Orchestrator
	agents map[string]*agenttest.Agent
	dialer *agentclient.Dialer
	pki    *testutil.PKI
	path   string      // the SQLite file
	health *healthView // the orchestrator's HealthView; all healthy at first
	down   *downView   // the orchestrator's DownView; nobody is down at first
	notes  *notifier   // the orchestrator's Notifier
}

// newRig starts agents for servers, each registered with room for `slots`
// starter workspaces (2 CPU, 4096 MB each), and an orchestrator with
// orchestrator.Default() settings.
func newRig(t *testing.T, slots int, servers ...string) *rig {
	t.Helper()
	ctx := context.Background()
	pki := testutil.NewPKI(t)
	path := filepath.Join(t.TempDir(), "berth.db")
	db, err := registry.Open(ctx, path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{t: t, db: db, path: path, pki: pki, agents: map[string]*agenttest.Agent{}, health: &healthView{}, down: &downView{}, notes: &notifier{}}
	for _, id := range servers {
		r.addServer(registry.Server{ID: id, Architecture: "amd64", Region: "local",
			TotalCPU: float64(2 * slots), TotalMemoryMB: int64(4096 * slots), TotalDiskGB: 1000})
	}
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	r.dialer = dialer
	r.orch = r.with(nil)
	return r
}

// addServer starts an agent for s.ID and registers s with its address.
func (r *rig) addServer(s registry.Server) {
	r.t.Helper()
	a := agenttest.Start(r.t, r.pki, s.ID)
	r.agents[s.ID] = a
	host, port, _ := net.SplitHostPort(a.Addr())
	s.Hostname, s.IPAddress = s.ID, host
	s.AgentPort, _ = strconv.Atoi(port)
	if _, err := r.db.CreateServer(context.Background(), s); err != nil {
		r.t.Fatal(err)
	}
}

// with builds another orchestrator over the rig's database, agents, down
// view and notifier, with change applied to the default settings and
// dependencies (nil: none). It has its own workspace locks: use one
// orchestrator at a time.
func (r *rig) with(change func(*orchestrator.Config, *orchestrator.Deps)) *orchestrator.Orchestrator {
	r.t.Helper()
	cfg := orchestrator.Default()
	deps := orchestrator.Deps{DB: r.db, Agents: r.dialer, Health: r.health, Down: r.down, Notifier: r.notes,
		Log: hclog.NewNullLogger()}
	if change != nil {
		change(&cfg, &deps)
	}
	o, err := orchestrator.New(cfg, deps)
	if err != nil {
		r.t.Fatalf("orchestrator.New: %v", err)
	}
	return o
}

// detachServer clears a workspace's server, as a row migrated from the
// Python service may have none; the registry's API never writes that, so
// it is done in SQL on the same file.
func (r *rig) detachServer(workspaceID string) {
	r.t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+r.path+"?_busy_timeout=5000")
	if err != nil {
		r.t.Fatal(err)
	}
	defer raw.Close()
	res, err := raw.Exec("UPDATE workspaces SET server_id = NULL WHERE id = ?", workspaceID)
	if err != nil {
		r.t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		r.t.Fatalf("detach server of %s: %d rows changed, want 1", workspaceID, n)
	}
}

// client is an agent client of a rig agent, as the scheduler holds it.
func (r *rig) client(server string) *agentclient.Client {
	return r.dialer.Client(server, r.agents[server].Addr())
}

// other is the server of a two-server rig that is not s.
func other(s string) string { return map[string]string{"ws-1": "ws-2", "ws-2": "ws-1"}[s] }

// containersOf lists the containers of a workspace on every agent, by
// server.
func (r *rig) containersOf(workspaceID string) map[string][]wire.Container {
	out := map[string][]wire.Container{}
	for id, a := range r.agents {
		for _, c := range a.Containers() {
			if c.Labels[wire.LabelWorkspaceID] == workspaceID {
				out[id] = append(out[id], c)
			}
		}
	}
	return out
}

// events lists the kinds of events recorded for a workspace, as
// "kind@server", oldest first.
func (r *rig) events(workspaceID string) []string {
	r.t.Helper()
	evs, err := r.db.ListEvents(context.Background(), registry.EventFilter{WorkspaceID: workspaceID, Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	out := []string{}
	for i := len(evs) - 1; i >= 0; i-- {
		out = append(out, evs[i].Kind+"@"+evs[i].ServerID)
	}
	return out
}

func createReq(id, user string) orchestrator.CreateRequest {
	return orchestrator.CreateRequest{UserID: user, SessionID: "s1", WorkspaceID: id,
		Config: orchestrator.WorkspaceConfig{Tier: "starter", Environment: map[string]string{"GITHUB_TOKEN": "t0k"},
			Settings: registry.Settings{GitName: "Ada"}}}
}

// setState changes a server's admin state.
func (r *rig) setState(server string, state fleet.State) {
	r.t.Helper()
	if _, err := r.db.UpdateServer(context.Background(), server, registry.ServerPatch{State: &state}); err != nil {
		r.t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hold makes agent a hold every request that match accepts until release
// is called (or the request ends); entered receives one value per held
// request. release is idempotent and runs when the test ends.
func hold(t *testing.T, a *agenttest.Agent, match func(*http.Request) bool) (entered <-chan struct{}, release func()) {
	g := newGate(t)
	g.install(a, match)
	return g.entered, g.release
}

// gate holds requests on any number of agents until it is released.
type gate struct {
	entered chan struct{} // one value per held request
	open    chan struct{}
	once    sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{entered: make(chan struct{}, 256), open: make(chan struct{})}
	t.Cleanup(g.release)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) install(a *agenttest.Agent, match func(*http.Request) bool) {
	a.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			if match(q) {
				g.entered <- struct{}{}
				select {
				case <-g.open:
				case <-q.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, q)
		})
	})
}

func isCreate(q *http.Request) bool {
	return q.Method == http.MethodPost && q.URL.Path == wire.PathContainers
}

// captureCreates records the body of every container create agent a
// serves.
func captureCreates(t *testing.T, a *agenttest.Agent) func() []wire.CreateContainerRequest {
	var mu sync.Mutex
	var got []wire.CreateContainerRequest
	a.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			if isCreate(q) {
				var req wire.CreateContainerRequest
				raw, err := readAll(q)
				if err == nil {
					err = json.Unmarshal(raw, &req)
				}
				if err != nil {
					t.Errorf("capture create: %v", err)
				}
				mu.Lock()
				got = append(got, req)
				mu.Unlock()
			}
			next.ServeHTTP(w, q)
		})
	})
	return func() []wire.CreateContainerRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]wire.CreateContainerRequest(nil), got...)
	}
}

// matchError reports whether err is want: for the orchestrator's typed
// errors, errors.As and the same fields (a placement error's Summary, text
// for people, only has to be there); otherwise errors.Is.
func matchError(err, want error) bool {
	switch w := want.(type) { //nolint:errorlint // want is the test's own unwrapped value
	case *orchestrator.PlacementError:
		var got *orchestrator.PlacementError
		return errors.As(err, &got) && errors.Is(got.Cause, w.Cause) && got.Region == w.Region && got.Summary != ""
	case *orchestrator.ImageMissingError:
		var got *orchestrator.ImageMissingError
		return errors.As(err, &got) && *got == *w
	case *orchestrator.ServerUnusableError:
		var got *orchestrator.ServerUnusableError
		return errors.As(err, &got) && *got == *w
	case *orchestrator.ServerInUseError:
		var got *orchestrator.ServerInUseError
		return errors.As(err, &got) && *got == *w
	case nil:
		return err == nil
	}
	return errors.Is(err, want)
}

// --- hand-written fakes of the orchestrator's dependencies

// healthView is a HealthView a test changes as it goes: every server is
// healthy unless set otherwise.
type healthView struct {
	mu sync.Mutex
	of map[string]fleet.Health
}

func (h *healthView) Health(id string) (fleet.Health, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.of[id]; ok {
		return v, true
	}
	return fleet.HealthHealthy, true
}

func (h *healthView) set(id string, v fleet.Health) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.of == nil {
		h.of = map[string]fleet.Health{}
	}
	h.of[id] = v
}

// downView is a DownView a test changes as it goes.
type downView struct {
	mu    sync.Mutex
	since map[string]time.Time
}

func (d *downView) DownSince(id string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.since[id]
	return t, ok
}

// set marks a server down since a time; a zero time marks it up.
func (d *downView) set(id string, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.since == nil {
		d.since = map[string]time.Time{}
	}
	if since.IsZero() {
		delete(d.since, id)
		return
	}
	d.since[id] = since
}

// note is one status change the notifier heard of.
type note struct {
	WorkspaceID string
	Status      fleet.Status
	Reason      string
}

// notifier records what the orchestrator tells it.
type notifier struct {
	mu    sync.Mutex
	notes []note
}

func (n *notifier) WorkspaceStatus(_ context.Context, ws registry.Workspace) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notes = append(n.notes, note{ws.ID, ws.Status, ws.StatusReason})
}

func (n *notifier) all() []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]note(nil), n.notes...)
}

// members is a gossip view in which every server reports cores real cores.
type members struct {
	servers []string
	cores   int64
}

func (m members) Members() []gossip.Member {
	out := []gossip.Member{}
	for _, s := range m.servers {
		out = append(out, gossip.Member{Name: s, State: gossip.StateAlive, Meta: wire.NodeMeta{CPUMilli: m.cores * 1000}})
	}
	return out
}

// readAll reads a request's body and leaves it to be read again.
func readAll(q *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(q.Body)
	q.Body = io.NopCloser(bytes.NewReader(raw))
	return raw, err
}
