package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/agent/agenttest"
	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/computeapi"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

const (
	adminToken   = "admin-token-for-tests"
	serviceToken = "service-token-for-tests"
)

// rig is the admin API over real HTTP, on a real registry in a temp dir,
// with the real orchestrator and in-process agents (the real agent API
// over an in-memory Docker, agenttest) reached over real mTLS. Gossip is a hand-written fake.
type rig struct {
	t       *testing.T
	db      *registry.DB
	pki     *testutil.PKI
	dialer  *agentclient.Dialer
	gossip  *fakeGossip
	agents  map[string]*agenttest.Agent
	handler http.Handler // every route, for tests that serve it themselves
	url     string
}

// newRig registers a healthy agent for each id, with 8 cores, 16 GiB
// and 100 GB configured.
func newRig(t *testing.T, servers ...string) *rig {
	t.Helper()
	ctx := context.Background()
	db, err := registry.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pki := testutil.NewPKI(t)
	cert, key := pki.Issue("scheduler", wire.RoleScheduler, false)
	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, pki: pki, dialer: dialer, gossip: newFakeGossip(t), agents: map[string]*agenttest.Agent{}}
	for _, id := range servers {
		r.addServer(id, registry.Server{TotalCPU: 8, TotalMemoryMB: 16384, TotalDiskGB: 100}, fleet.HealthHealthy)
	}
	cfg := orchestrator.Default()
	cfg.Strategy = placement.Spread
	orch, err := orchestrator.New(cfg, orchestrator.Deps{DB: db, Agents: dialer, Members: r.gossip, Tiers: tiers.Builtin(),
		Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = computeapi.ErrorHandler
	admin.New(admin.Deps{Token: adminToken, ServiceToken: serviceToken, Registry: db, Fleet: orch, Agents: dialer,
		Members: r.gossip, Billing: db, Log: hclog.NewNullLogger()}).Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	r.handler, r.url = e, srv.URL
	return r
}

// startAgent starts an agent whose certificate names id.
func (r *rig) startAgent(id string) *agenttest.Agent {
	a := agenttest.Start(r.t, r.pki, id)
	r.agents[id] = a
	return a
}

// addServer starts an agent for id and registers it directly in the
// registry with s's capacity and the given health.
func (r *rig) addServer(id string, s registry.Server, h fleet.Health) {
	r.t.Helper()
	a := r.startAgent(id)
	host, port := splitAddr(r.t, a.Addr())
	s.ID, s.Hostname, s.IPAddress, s.AgentPort, s.Architecture = id, id, host, port, "amd64"
	if s.Region == "" {
		s.Region = "local"
	}
	ctx := context.Background()
	if _, err := r.db.CreateServer(ctx, s); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.db.SetServerHealth(ctx, id, h, "", time.Time{}); err != nil {
		r.t.Fatal(err)
	}
}

// reserve inserts a workspace row holding cpu and memMB on server.
func (r *rig) reserve(id, server string, cpu float64, memMB int64) {
	r.t.Helper()
	_, err := r.db.ReserveAndInsert(context.Background(), registry.Workspace{ID: id, UserID: "u1", SessionID: "s1",
		Tier: "starter", ServerID: server, Reservation: fleet.Resources{CPU: cpu, MemoryMB: memMB, DiskGB: 10, BandwidthMbps: 100}},
		registry.Credentials{}, registry.Limits{})
	if err != nil {
		r.t.Fatal(err)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) detail(t *testing.T) string {
	t.Helper()
	var v struct{ Detail any }
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	s, _ := v.Detail.(string)
	return s
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// call sends body (JSON unless it is a string) with the given headers.
func (r *rig) call(method, path string, body any, hdr map[string]string) response {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// admin calls with the admin token.
func (r *rig) admin(method, path string, body any) response {
	r.t.Helper()
	return r.call(method, path, body, map[string]string{"Authorization": "Bearer " + adminToken})
}

// service calls with the service token, as podex does.
func (r *rig) service(method, path string, body any) response {
	r.t.Helper()
	return r.call(method, path, body, map[string]string{"X-Internal-Service-Token": serviceToken})
}

func wantStatus(t *testing.T, got response, want int) {
	t.Helper()
	if got.status != want {
		t.Fatalf("status = %d, want %d (body %s)", got.status, want, got.body)
	}
}

// fakeGossip is a hand-written gossip view: tests set members, and
// subscribers get an event per change.
type fakeGossip struct {
	mu      sync.Mutex
	members map[string]gossip.Member
	subs    []chan gossip.Event
	closed  bool
}

func newFakeGossip(t *testing.T) *fakeGossip {
	g := &fakeGossip{members: map[string]gossip.Member{}}
	t.Cleanup(func() { // as the pool's Shutdown does
		g.mu.Lock()
		defer g.mu.Unlock()
		g.closed = true
		for _, ch := range g.subs {
			close(ch)
		}
	})
	return g
}

func (g *fakeGossip) Members() []gossip.Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]gossip.Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	return out
}

func (g *fakeGossip) Subscribe() <-chan gossip.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan gossip.Event, 64)
	if g.closed {
		close(ch)
	} else {
		g.subs = append(g.subs, ch)
	}
	return ch
}

func (g *fakeGossip) set(m gossip.Member) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members[m.Name] = m
	for _, ch := range g.subs {
		select {
		case ch <- gossip.Event{Member: m, Kind: "update"}:
		default:
		}
	}
}

// agentMember is an alive agent as gossip shows it.
func agentMember(id, addr string) gossip.Member {
	return gossip.Member{Name: id, Addr: "10.0.0.1:7946", State: gossip.StateAlive, Since: time.Now(),
		Meta: wire.NodeMeta{Role: wire.NodeRoleAgent, ServerID: id, AgentAddr: addr, Region: "eu-central",
			Labels: map[string]string{"disk": "nvme"}, Architecture: "amd64", CPUMilli: 4000, CPUUsedPct: 50,
			MemTotalMB: 8192, MemFreeMB: 6144, DiskTotalGB: 100, DiskFreeGB: 80, Version: "test"}}
}
