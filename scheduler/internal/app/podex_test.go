package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/scheduler/internal/config"
	"berth/scheduler/internal/podexapi/podexapitest"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
)

func call(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("X-Internal-Service-Token", "bench-token")
	req.Header.Set("X-User-ID", "u1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// With COMPUTE_API_BASE_URL the scheduler is the podex API's peer: create
// and scale-options use the API's hardware specs, the API's server list
// lands in the registry, servers heartbeat with what their agents measure,
// status changes are synced, and a workspace's running time is billed into
// the API — every call in the shapes the fake API enforces.
func TestPodexPeer(t *testing.T) {
	api := podexapitest.New("bench-token")
	defer api.Close()
	api.SetSpecs(
		map[string]any{"id": 1, "tier": "tiny", "display_name": "Tiny", "architecture": "amd64", "vcpu": 1, "memory_mb": 512, "hourly_rate": 0.01},
		map[string]any{"id": 2, "tier": "starter", "display_name": "Starter", "architecture": "amd64", "vcpu": 3, "memory_mb": 4096, "hourly_rate": 0.03})
	srv, a := benchApp(t, 1, func(c *config.Config) {
		// The API lists the agent as podex would: its port as docker_port.
		var seeds []map[string]any
		if err := json.Unmarshal([]byte(c.WorkspaceServers), &seeds); err != nil {
			t.Fatal(err)
		}
		api.SetServers(map[string]any{"id": seeds[0]["id"], "hostname": seeds[0]["hostname"],
			"ip_address": seeds[0]["ip_address"], "docker_port": seeds[0]["agent_port"], "architecture": "amd64"})
		c.APIBaseURL = api.URL
		c.HardwareSpecsTTL, c.APIHeartbeatInterval, c.ServerSyncInterval = 100*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		c.BillingInterval, c.BillingFlushInterval = time.Second, 100*time.Millisecond
	})
	ctx := context.Background()
	testutil.Eventually(t, 5*time.Second, "the API's specs in use", func() bool {
		_, ok := a.peer.catalog.Lookup("tiny")
		return ok
	})
	if status, body := call(t, http.MethodPost, srv.URL+"/workspaces",
		map[string]any{"session_id": "s1", "workspace_id": "peer-1", "config": map[string]any{"tier": "tiny"}}); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	created := time.Now()
	ws, err := a.db.GetWorkspace(ctx, "peer-1")
	if err != nil || ws.Reservation.CPU != 1 || ws.Reservation.MemoryMB != 512 {
		t.Fatalf("tiny reserves %+v (%v); want the API's 1 vCPU, 512 MB", ws.Reservation, err)
	}
	status, body := call(t, http.MethodGet, srv.URL+"/workspaces/peer-1/scale-options", nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"tier":"starter"`) || strings.Contains(string(body), `"tier":"pro"`) {
		t.Errorf("scale-options: %d %s; want the API's tiers (starter, no pro)", status, body)
	}

	testutil.Eventually(t, 5*time.Second, "a heartbeat with the agent's figures", func() bool {
		for _, hb := range api.Heartbeats() {
			if hb.ServerID == "ws-00" && hb.ActiveWorkspaces == 1 && hb.UsedMemoryMB == 2048 && hb.UsedDiskGB == 20 && hb.UsedCPU == 0.4 {
				return true
			}
		}
		return false
	})
	testutil.Eventually(t, 5*time.Second, "an interval billed while it runs", func() bool { return api.UsageSeconds("peer-1") >= 1 })
	for time.Since(created) < 2500*time.Millisecond {
		time.Sleep(50 * time.Millisecond) // a run of at least 2.5 s (the length of the run, not a synchronisation)
	}
	if status, body := call(t, http.MethodPost, srv.URL+"/workspaces/peer-1/stop", nil); status != http.StatusNoContent {
		t.Fatalf("stop: %d %s", status, body)
	}
	ran := time.Since(created)
	testutil.Eventually(t, 5*time.Second, "the outbox drained", func() bool {
		s, err := a.db.BillingSummary(ctx)
		return err == nil && s.Pending == 0 && s.OpenIntervals == 0
	})
	rows, _ := a.db.ListUsage(ctx, registry.UsageFilter{WorkspaceID: "peer-1"})
	var inOutbox int64
	for _, r := range rows {
		inOutbox += r.Seconds
	}
	if got := api.UsageSeconds("peer-1"); got != inOutbox || got < int64(ran/time.Second)-1 || got > int64(ran/time.Second) {
		t.Errorf("billed %d s (outbox %d s) for a run of %s", got, inOutbox, ran)
	}
	var synced []string
	testutil.Eventually(t, 5*time.Second, "status syncs", func() bool {
		synced = synced[:0]
		for _, s := range api.Statuses() {
			if s.WorkspaceID == "peer-1" {
				synced = append(synced, s.Status)
			}
		}
		return len(synced) > 0 && synced[len(synced)-1] == "stopped"
	})
	t.Logf("status syncs of peer-1: %v", synced)
	if listed, err := a.db.ListAPIServers(ctx); err != nil || len(listed) != 1 || listed[0].ServerID != "ws-00" {
		t.Errorf("servers the API listed: %+v, %v", listed, err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"berth_billing_outbox_pending 0", `berth_podex_api_requests_total{op="billing.usage_record",outcome="ok"}`,
		`berth_podex_api_requests_total{op="servers.heartbeat",outcome="ok"}`, "berth_billing_seconds_sent_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if v := api.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
}
