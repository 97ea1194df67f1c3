package podexapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/podexapi/podexapitest"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

const token = "svc-token"

// fastConfig retries quickly.
func fastConfig(base string) Config {
	c := DefaultConfig()
	c.BaseURL, c.Token = base, token
	c.Timeout, c.BackoffBase, c.BackoffMax = 300*time.Millisecond, time.Millisecond, 4*time.Millisecond
	return c
}

type observed struct {
	mu    sync.Mutex
	calls []string
	tries []int
}

func (o *observed) PodexCall(op, outcome string, tries int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, op+" "+outcome)
	o.tries = append(o.tries, tries)
}

func newTestClient(t *testing.T, base string, obs Observer) *Client {
	t.Helper()
	c, err := NewClient(fastConfig(base), obs, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The retry policy: no answer, 5xx, 408 and 429 are tried again up to
// Attempts; 404 and other 4xx are final; every call is observed once with
// its outcome and tries.
func TestClientRetries(t *testing.T) {
	const hang, drop = -1, -2 // a try that times out; a connection closed without an answer
	tests := []struct {
		name      string
		script    []int // what each try gets
		wantErr   error
		wantTries int
		outcome   string
	}{
		{"ok at once", []int{200}, nil, 1, "ok"},
		{"503 then ok", []int{503, 200}, nil, 2, "ok"},
		{"429 then ok", []int{429, 204}, nil, 2, "ok"},
		{"408 then 500 then ok", []int{408, 500, 200}, nil, 3, "ok"},
		{"a timeout then ok", []int{hang, 200}, nil, 2, "ok"},
		{"a dropped connection then ok", []int{drop, 200}, nil, 2, "ok"},
		{"always 502", []int{502, 502, 502, 502}, ErrUnavailable, 3, "unavailable"},
		{"404 is final", []int{404, 200}, ErrNotFound, 1, "not_found"},
		{"422 is final", []int{422, 200}, ErrRejected, 1, "rejected"},
		{"401 is final", []int{401, 200}, ErrRejected, 1, "rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				switch code := tt.script[min(i, len(tt.script)-1)]; code {
				case hang:
					io.Copy(io.Discard, r.Body) // so the server notices the client leaving
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
				case drop:
					conn, _, _ := w.(http.Hijacker).Hijack()
					conn.Close()
				default:
					w.WriteHeader(code)
				}
			}))
			defer srv.Close()
			obs := &observed{}
			c := newTestClient(t, srv.URL, obs)
			err := c.SyncStatus(context.Background(), "w1", "running")
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := int(n.Load()); got != tt.wantTries {
				t.Errorf("tries: got %d, want %d", got, tt.wantTries)
			}
			want := []string{"workspaces.sync_status " + tt.outcome}
			if diff := cmp.Diff(want, obs.calls); diff != "" || obs.tries[0] != tt.wantTries {
				t.Errorf("observed (-want +got):\n%s tries %v", diff, obs.tries)
			}
		})
	}
}

// Backoff doubles from the base up to the cap and adds at most 50 %.
func TestBackoff(t *testing.T) {
	c := newTestClient(t, "http://unused", nil)
	c.cfg.BackoffBase, c.cfg.BackoffMax = 500*time.Millisecond, 10*time.Second
	for _, tt := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, 750 * time.Millisecond},
		{2, time.Second, 1500 * time.Millisecond},
		{5, 8 * time.Second, 12 * time.Second},
		{6, 10 * time.Second, 15 * time.Second},
		{60, 10 * time.Second, 15 * time.Second},
	} {
		for _, j := range []float64{0, 0.5, 0.999} {
			c.jitter = func() float64 { return j }
			if got := c.backoff(tt.n); got < tt.min || got >= tt.max+time.Millisecond {
				t.Errorf("backoff(%d) with jitter %g = %s, want %s..%s", tt.n, j, got, tt.min, tt.max)
			}
		}
	}
}

// Every call against the fake API: the shapes and the headers it enforces.
func TestCallsMatchTheAPI(t *testing.T) {
	ctx := context.Background()
	api := podexapitest.New(token)
	defer api.Close()
	api.SetServers(map[string]any{"id": "srv-1", "hostname": "h1", "ip_address": "10.0.0.1", "docker_port": 7443, "region": "eu"},
		map[string]any{"id": "srv-2", "hostname": "h2", "ip_address": "10.0.0.2", "docker_port": 7443, "region": "us"})
	api.SetSpecs(map[string]any{"id": "1", "tier": "starter", "display_name": "Starter", "vcpu": 2, "memory_mb": 4096})
	c := newTestClient(t, api.URL, nil)

	list, err := c.ListServers(ctx, "eu")
	if err != nil || len(list) != 1 || list[0].ID != "srv-1" {
		t.Errorf("ListServers(eu) = %+v, %v; want srv-1", list, err)
	}
	if specs, err := c.HardwareSpecs(ctx); err != nil || len(specs) != 1 {
		t.Errorf("HardwareSpecs = %+v, %v", specs, err)
	}
	u := ServerUsage{UsedCPU: 1.25, UsedMemoryMB: 2048, UsedDiskGB: 17, ActiveWorkspaces: 3}
	if err := c.Heartbeat(ctx, "srv-1", u); err != nil {
		t.Errorf("Heartbeat: %v", err)
	}
	if err := c.Heartbeat(ctx, "unknown", u); !errors.Is(err, ErrNotFound) {
		t.Errorf("Heartbeat of an unknown server: %v, want ErrNotFound", err)
	}
	if err := c.SyncStatus(ctx, "w1", "starting"); err != nil {
		t.Errorf("SyncStatus: %v", err)
	}
	end := time.Date(2026, 1, 5, 10, 11, 12, 345678000, time.UTC)
	ev := ComputeEvent("cs-1", "u", "s", "w1", "starter", "srv-1", "c1", 60, end)
	for range 2 { // the second time is a duplicate the API counts once
		if err := c.RecordUsage(ctx, []UsageEvent{ev}); err != nil {
			t.Errorf("RecordUsage: %v", err)
		}
	}
	if v := api.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
	hb := api.Heartbeats()
	if len(hb) != 1 || hb[0].UsedCPU != 1.25 || hb[0].UsedMemoryMB != 2048 || hb[0].UsedDiskGB != 17 || hb[0].ActiveWorkspaces != 3 {
		t.Errorf("heartbeats: %+v", hb)
	}
	got := api.Usage("w1")
	if len(got) != 1 || api.Duplicates() != 1 || got[0].CreatedAt != "2026-01-05T10:11:12.345678Z" || got[0].Quantity != 60 {
		t.Errorf("usage: %+v, duplicates %d", got, api.Duplicates())
	}

	bad := newTestClient(t, api.URL, nil)
	bad.cfg.Token = "wrong"
	if _, err := bad.ListServers(ctx, ""); !errors.Is(err, ErrRejected) {
		t.Errorf("a wrong token: %v, want ErrRejected", err)
	}
	if len(api.Violations()) != 1 {
		t.Errorf("violations after a wrong token: %v, want one", api.Violations())
	}
}

// Parsing the hardware specs as §9.1 says (quirk 18: cents rounded).
func TestParseSpecs(t *testing.T) {
	raw := `[
		{"id": 3, "tier": "Pro", "display_name": "Pro", "architecture": "x86_64", "vcpu": 4, "memory_mb": 8192,
		 "storage_gb": 50, "bandwidth_mbps": 250, "hourly_rate": "0.29", "requires_subscription": "pro", "sort_order": 5},
		{"id": 1, "tier": "starter_arm", "display_name": "Starter (ARM)", "architecture": "aarch64", "vcpu": 2,
		 "memory_mb": "4096", "hourly_rate": 0.02, "sort_order": 1},
		{"id": 9, "tier": "gpu_starter", "display_name": "GPU", "vcpu": 8, "memory_mb": 65536, "is_gpu": true,
		 "gpu_type": "NVIDIA RTX 4000 SFF Ada", "gpu_count": 1, "hourly_rate_cents": 40, "sort_order": 8},
		{"id": 4, "tier": "nocpu", "display_name": "No CPU", "memory_mb": 1},
		{"tier": "noid", "display_name": "No id", "vcpu": 1, "memory_mb": 1},
		{"id": 5, "tier": "gone", "display_name": "Gone", "vcpu": 1, "memory_mb": 1, "is_available": false},
		{"id": 6, "tier": "plain", "display_name": "Plain", "vcpu": 1, "memory_mb": 512, "gpu_type": null}
	]`
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(raw)) }))
	defer api.Close()
	got, err := newTestClient(t, api.URL, nil).HardwareSpecs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []tiers.Spec{
		{Tier: "starter_arm", DisplayName: "Starter (ARM)", Architecture: "arm64", VCPU: 2, MemoryMB: 4096, StorageGB: 20,
			HourlyRateCents: 2, SortOrder: 1},
		{Tier: "pro", DisplayName: "Pro", Architecture: "amd64", VCPU: 4, MemoryMB: 8192, StorageGB: 50, BandwidthMbps: 250,
			HourlyRateCents: 29, RequiresSubscription: "pro", SortOrder: 5},
		{Tier: "plain", DisplayName: "Plain", Architecture: "amd64", VCPU: 1, MemoryMB: 512, StorageGB: 20, SortOrder: 6},
		{Tier: "gpu_starter", DisplayName: "GPU", Architecture: "amd64", VCPU: 8, MemoryMB: 65536, StorageGB: 20, IsGPU: true,
			GPUType: "NVIDIA RTX 4000 SFF Ada", GPUCount: 1, HourlyRateCents: 40, SortOrder: 8},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("specs (-want +got):\n%s", diff)
	}
}

// The catalogue: built-in until the API answers, then the API's specs; a
// failed fetch keeps the stale answer.
func TestCatalog(t *testing.T) {
	ctx := context.Background()
	api := podexapitest.New(token)
	defer api.Close()
	k := NewCatalog(newTestClient(t, api.URL, nil))
	if i := k.Info(); i.Source != "builtin" || !cmp.Equal(k.All(), tiers.Builtin().All()) {
		t.Fatalf("before any answer: %+v", i)
	}
	api.SetSpecs() // an empty list: not taken
	if err := k.Refresh(ctx); err == nil || k.Info().Source != "builtin" {
		t.Errorf("empty answer: err %v, source %s; want an error and the built-in table", err, k.Info().Source)
	}
	api.SetSpecs(map[string]any{"id": "1", "tier": "starter", "display_name": "Starter", "vcpu": 3, "memory_mb": 6144, "hourly_rate": 0.05})
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, ok := k.Lookup("STARTER"); !ok || s.VCPU != 3 || s.HourlyRateCents != 5 || k.Info().Source != "api" {
		t.Errorf("after an answer: %+v %v %+v", s, ok, k.Info())
	}
	if _, ok := k.Lookup("pro"); ok {
		t.Errorf("pro is not in the API's specs, but Lookup found it")
	}
	api.SetFailRate(1, 7)
	if err := k.Refresh(ctx); err == nil {
		t.Fatal("a failing API: no error")
	}
	if s, _ := k.Lookup("starter"); s.VCPU != 3 || !k.Info().Stale {
		t.Errorf("after a failure: %+v, info %+v; want the stale answer", s, k.Info())
	}
}

func openRegistry(t *testing.T) *registry.DB {
	t.Helper()
	db, err := registry.Open(context.Background(), filepath.Join(t.TempDir(), "berth.db"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The server list lands in the registry; a server it drops is cordoned.
func TestServerSync(t *testing.T) {
	ctx := context.Background()
	api := podexapitest.New(token)
	defer api.Close()
	db := openRegistry(t)
	c := newTestClient(t, api.URL, nil)
	c.cfg.Region = "eu"
	s := NewServerSync(c, db)
	api.SetServers(map[string]any{"id": "a", "ip_address": "10.0.0.1", "docker_port": 7443, "region": "eu"},
		map[string]any{"id": "b", "hostname": "b.example", "docker_port": 7444, "region": "eu"},
		map[string]any{"id": "us-1", "ip_address": "10.1.0.1", "region": "us"})
	if got, err := s.Once(ctx); err != nil || !cmp.Equal(got.Added, []string{"a", "b"}) {
		t.Fatalf("first sync: %+v, %v", got, err)
	}
	b, err := db.GetServer(ctx, "b")
	if err != nil || b.Hostname != "b.example" || b.IPAddress != "b.example" || b.AgentPort != 7444 || b.State != fleet.StateActive {
		t.Errorf("server b: %+v, %v", b, err)
	}
	api.SetServers(map[string]any{"id": "a", "ip_address": "10.0.0.1", "docker_port": 7443, "region": "eu"})
	if got, err := s.Once(ctx); err != nil || !cmp.Equal(got.Cordoned, []string{"b"}) {
		t.Errorf("second sync: %+v, %v; want b cordoned", got, err)
	}
	api.SetFailRate(1, 3)
	if _, err := s.Once(ctx); err == nil {
		t.Error("a failing API: no error")
	}
	if a, _ := db.GetServer(ctx, "a"); a.State != fleet.StateActive {
		t.Errorf("after a failed list, a is %s; want it untouched", a.State)
	}
}

type healthMap map[string]fleet.Health

func (h healthMap) Health(id string) (fleet.Health, bool) { v, ok := h[id]; return v, ok }

type capacities map[string]wire.Capacity

func (c capacities) Capacity(_ context.Context, s registry.Server) (wire.Capacity, error) {
	v, ok := c[s.ID]
	if !ok {
		return wire.Capacity{}, errors.New("agent unreachable")
	}
	return v, nil
}

// Heartbeats go only for servers whose probes pass and whose agent answers,
// with what the agent measured and the running workspaces.
func TestHeartbeats(t *testing.T) {
	ctx := context.Background()
	api := podexapitest.New(token)
	defer api.Close()
	db := openRegistry(t)
	for _, id := range []string{"up", "down", "mute", "unknown-to-api"} {
		if _, err := db.CreateServer(ctx, registry.Server{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	api.SetServers(map[string]any{"id": "up"}, map[string]any{"id": "down"}, map[string]any{"id": "mute"})
	for i, st := range []fleet.Status{fleet.StatusRunning, fleet.StatusRunning, fleet.StatusStopped} {
		id := []string{"w1", "w2", "w3"}[i]
		if _, err := db.ReserveAndInsert(ctx, registry.Workspace{ID: id, UserID: "u", ServerID: "up"}, registry.Credentials{}, registry.Limits{}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetWorkspaceStatus(ctx, id, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	capa := wire.Capacity{CPUCores: 8, CPUPercent: 25, MemoryTotalMB: 16000, MemoryAvailableMB: 10000, DiskTotalGB: 100.4, DiskFreeGB: 40}
	h := NewHeartbeats(newTestClient(t, api.URL, nil), db,
		healthMap{"up": fleet.HealthHealthy, "down": fleet.HealthUnreachable, "mute": fleet.HealthDegraded, "unknown-to-api": fleet.HealthHealthy},
		capacities{"up": capa, "unknown-to-api": capa})
	if sent := h.Once(ctx); sent != 1 {
		t.Errorf("sent %d heartbeats, want 1", sent)
	}
	got := api.Heartbeats()
	want := ServerUsage{UsedCPU: 2, UsedMemoryMB: 6000, UsedDiskGB: 60, ActiveWorkspaces: 2}
	if len(got) != 1 || got[0].ServerID != "up" || (ServerUsage{got[0].UsedCPU, got[0].UsedMemoryMB, got[0].UsedDiskGB, got[0].ActiveWorkspaces}) != want {
		t.Errorf("heartbeats %+v, want one of up with %+v", got, want)
	}
	if s, _ := db.GetServer(ctx, "up"); s.Usage.MemoryMB != 6000 || s.Usage.ActiveWorkspaces != 2 {
		t.Errorf("recorded usage of up: %+v", s.Usage)
	}
	if v := api.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
}

type call2 struct{ id, status string }

// Status changes reach the API mapped (creating → starting;
// pending_deletion not sent).
func TestWorkspaceStatusSync(t *testing.T) {
	api := podexapitest.New(token)
	defer api.Close()
	s := NewStatusSync(newTestClient(t, api.URL, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	for _, st := range []fleet.Status{fleet.StatusPendingDeletion, fleet.StatusError, fleet.StatusCreating, fleet.StatusStopped} {
		s.WorkspaceStatus(ctx, registry.Workspace{ID: "w-" + string(st), Status: st})
	}
	want := []call2{{"w-error", "error"}, {"w-creating", "starting"}, {"w-stopped", "stopped"}}
	deadline := time.Now().Add(5 * time.Second)
	var got []call2
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, st := range api.Statuses() {
			got = append(got, call2{st.WorkspaceID, st.Status})
		}
		if len(got) >= len(want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(call2{})); diff != "" {
		t.Errorf("status syncs (-want +got):\n%s", diff)
	}
}

// Updates queued while the API is slow collapse to the latest per workspace.
func TestWorkspaceStatusCoalesces(t *testing.T) {
	s := NewStatusSync(newTestClient(t, "http://unused", nil))
	for _, st := range []fleet.Status{fleet.StatusRunning, fleet.StatusStopped, fleet.StatusError} {
		s.WorkspaceStatus(context.Background(), registry.Workspace{ID: "a", Status: st})
	}
	s.WorkspaceStatus(context.Background(), registry.Workspace{ID: "b", Status: fleet.StatusRunning})
	var got []statusUpdate
	for u, ok := s.next(); ok; u, ok = s.next() {
		got = append(got, u)
	}
	want := []statusUpdate{{"a", "error"}, {"b", "running"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("pending = %v, want %v", got, want)
	}
}
