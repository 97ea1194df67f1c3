package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/testutil"
	"berth/shared/wire"
)

func TestAuth(t *testing.T) {
	r := newRig(t, "ws-1")
	s := r.session()
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		wantStatus int
		wantDetail string
	}{
		{"admin route without token", "GET", "/admin/servers", nil, 401, "Missing admin token"},
		{"admin route with wrong bearer", "GET", "/admin/servers", map[string]string{"Authorization": "Bearer nope"}, 401, "Invalid admin token"},
		{"admin route with bearer", "GET", "/admin/servers", map[string]string{"Authorization": "Bearer " + adminToken}, 200, ""},
		{"admin route with X-Admin-Token", "GET", "/admin/cluster", map[string]string{"X-Admin-Token": adminToken}, 200, ""},
		{"admin route with a session cookie", "GET", "/admin/members", s.cookie(), 200, ""},
		{"admin route with an unknown session", "GET", "/admin/members", map[string]string{"Cookie": admin.CookieName + "=x"}, 401, "Session expired or signed out: sign in again"},
		{"admin route with the admin token as cookie", "GET", "/admin/members", map[string]string{"Cookie": admin.CookieName + "=" + adminToken}, 401, "Session expired or signed out: sign in again"},
		{"wrong bearer beside a good session", "GET", "/admin/members", map[string]string{"Cookie": admin.CookieName + "=" + s.id, "Authorization": "Bearer nope"}, 401, "Invalid admin token"},
		{"admin route with the service token", "GET", "/admin/servers", map[string]string{"Authorization": "Bearer " + serviceToken}, 401, "Invalid admin token"},
		{"event stream without token", "GET", "/admin/ui/events", nil, 401, "Missing admin token"},
		{"podex route without token", "GET", "/servers/ws-1/images", nil, 401, "Missing service token"},
		{"podex route with the admin token", "GET", "/servers/ws-1/images", map[string]string{"X-Internal-Service-Token": adminToken}, 401, "Invalid service token"},
		{"podex route with service bearer", "GET", "/servers/ws-1/images", map[string]string{"Authorization": "Bearer " + serviceToken}, 200, ""},
		{"unknown admin path: plain 404, no auth", "GET", "/admin/nope", nil, 404, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.call(tt.method, tt.path, nil, tt.hdr)
			wantStatus(t, got, tt.wantStatus)
			if tt.wantDetail != "" {
				if d := got.detail(t); d != tt.wantDetail {
					t.Errorf("detail = %q, want %q", d, tt.wantDetail)
				}
			}
		})
	}
}

func TestCreateServer(t *testing.T) {
	r := newRig(t, "ws-1")
	good := r.startAgent("ws-new")
	host, port := splitAddr(t, good.Addr())
	other := r.startAgent("ws-other") // its certificate names ws-other
	otherHost, otherPort := splitAddr(t, other.Addr())
	liar := liarAgent(t, r.pki, "ws-liar", "ws-somebody-else")
	liarHost, liarPort := splitAddr(t, liar)
	closedPort := testutil.FreePort(t)

	tests := []struct {
		name       string
		body       any
		wantStatus int
		wantDetail []string // substrings of the detail
	}{
		{"valid", map[string]any{"id": "ws-new", "ip_address": host, "agent_port": port, "region": "eu",
			"labels": map[string]string{"disk": "ssd"}}, 201, nil},
		{"duplicate id", map[string]any{"id": "ws-1", "ip_address": host, "agent_port": port}, 409,
			[]string{`server "ws-1" is already registered`}},
		{"duplicate name", map[string]any{"id": "ws-x", "name": "ws-1", "ip_address": host, "agent_port": port}, 409,
			[]string{`name "ws-1" is already taken by server "ws-1"`}},
		{"unreachable agent", map[string]any{"id": "ws-gone", "ip_address": "127.0.0.1", "agent_port": closedPort}, 400,
			[]string{fmt.Sprintf("agent address 127.0.0.1:%d is unreachable", closedPort), "refused"}},
		{"certificate for another id", map[string]any{"id": "ws-wrong", "ip_address": otherHost, "agent_port": otherPort}, 400,
			[]string{"certificate of the agent", "is for ws-other", `not for server id "ws-wrong"`}},
		{"agent answers as another id", map[string]any{"id": "ws-liar", "ip_address": liarHost, "agent_port": liarPort}, 400,
			[]string{`says it is server "ws-somebody-else", not "ws-liar"`}},
		{"no id", map[string]any{"ip_address": host}, 400, []string{"id is required"}},
		{"bad id", map[string]any{"id": "WS_1", "ip_address": host}, 400, []string{`id "WS_1": want 1-63 lower-case`}},
		{"no address", map[string]any{"id": "ws-y"}, 400, []string{"ip_address is required"}},
		{"address with port", map[string]any{"id": "ws-y", "ip_address": "10.0.0.1:7443"}, 400, []string{"without port"}},
		{"bad port", map[string]any{"id": "ws-y", "ip_address": host, "agent_port": 70000}, 400, []string{"agent_port 70000: want 1-65535"}},
		{"bad state", map[string]any{"id": "ws-y", "ip_address": host, "state": "paused"}, 400, []string{`state "paused": want active, draining or cordoned`}},
		{"negative capacity", map[string]any{"id": "ws-y", "ip_address": host, "total_cpu": -1}, 400, []string{"must be >= 0"}},
		{"wrong type", map[string]any{"id": "ws-y", "ip_address": host, "total_cpu": "lots"}, 400, []string{"total_cpu: want a number, got a JSON string"}},
		{"unknown field", map[string]any{"id": "ws-y", "ip_address": host, "colour": "red"}, 400, []string{`unknown field "colour"`}},
		{"not JSON", "{", 400, []string{"not valid JSON"}},
		{"a stray brace after the object", `{"hostname":"h1","ip_address":"10.0.0.1"}}`, 400, []string{"data after the JSON object"}},
		{"empty body", "", 400, []string{"empty"}},
		{"body past 1 MiB", `{"id": "ws-y", "name": "` + strings.Repeat("x", 1<<20) + `"}`, 413,
			[]string{"Request body too large: an admin request body carries at most 1048576 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.admin("POST", "/admin/servers", tt.body)
			wantStatus(t, got, tt.wantStatus)
			for _, want := range tt.wantDetail {
				if d := got.detail(t); !strings.Contains(d, want) {
					t.Errorf("detail = %q, want it to contain %q", d, want)
				}
			}
		})
	}

	// The valid one is registered as given, with the architecture the agent
	// measures, and listed.
	var s admin.Server
	r.admin("GET", "/admin/servers/ws-new", nil).decode(t, &s)
	want := admin.Server{ID: "ws-new", Name: "ws-new", Hostname: host, IPAddress: host, AgentPort: port,
		AgentAddress: good.Addr(), Architecture: "amd64", Region: "eu", Labels: map[string]string{"disk": "ssd"},
		State: "active", Health: "unknown", Effective: admin.Resources{BandwidthMbps: 1000},
		Available: admin.Resources{BandwidthMbps: 1000}}
	if diff := cmp.Diff(want, s, ignoreTimes); diff != "" {
		t.Errorf("GET /admin/servers/ws-new (-want +got):\n%s", diff)
	}
	var list admin.ServerList
	r.admin("GET", "/admin/servers", nil).decode(t, &list)
	if got := serverIDs(list.Servers); !cmp.Equal(got, []string{"ws-1", "ws-new"}) {
		t.Errorf("servers = %v, want [ws-1 ws-new]", got)
	}
}

var ignoreTimes = cmp.FilterPath(func(p cmp.Path) bool {
	switch p.Last().String() {
	case ".CreatedAt", ".UpdatedAt", ".LastHealthCheck", ".Since", ".Generated", ".At", ".LastActivity", ".SampledAt", ".CollectedAt":
		return true
	}
	return false
}, cmp.Ignore())

func serverIDs(ss []admin.Server) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

// liarAgent serves an agent health answer naming sayID, with a valid
// certificate for certID.
func liarAgent(t *testing.T, pki *testutil.PKI, certID, sayID string) string {
	t.Helper()
	cert, key := pki.Issue(certID, wire.RoleAgent, true, certID, "127.0.0.1")
	cfg, err := mtls.ServerConfig(mtls.Files{Cert: cert, Key: key, CA: pki.CAFile}, wire.RoleScheduler)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","server_id":%q,"docker_ok":true}`, sayID)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestDiscoveredAgents(t *testing.T) {
	r := newRig(t, "ws-1")
	disc := r.startAgent("ws-disc")
	r.gossip.set(agentMember("ws-1", r.agents["ws-1"].Addr())) // registered: not discovered
	r.gossip.set(agentMember("ws-disc", disc.Addr()))
	dead := agentMember("ws-dead", "10.9.9.9:7443")
	dead.State = gossip.StateDead
	r.gossip.set(dead)
	r.gossip.set(gossip.Member{Name: "scheduler", State: gossip.StateAlive, Meta: wire.NodeMeta{Role: wire.NodeRoleScheduler}})

	var list admin.ServerList
	r.admin("GET", "/admin/servers", nil).decode(t, &list)
	want := []admin.Discovered{{ID: "ws-disc", AgentAddress: disc.Addr(), GossipState: "alive", Region: "eu-central",
		Architecture: "amd64", Labels: map[string]string{"disk": "nvme"}, Version: "test",
		Use: admin.Use{CPUCores: 4, CPUPercent: 50, MemoryUsedMB: 2048, MemoryTotalMB: 8192, DiskUsedGB: 20, DiskTotalGB: 100}}}
	if diff := cmp.Diff(want, list.Discovered, ignoreTimes); diff != "" {
		t.Errorf("discovered (-want +got):\n%s", diff)
	}
	if list.Servers[0].Use == nil || list.Servers[0].GossipState != "alive" {
		t.Errorf("ws-1 = %+v, want live use from gossip", list.Servers[0])
	}

	wantStatus(t, r.admin("POST", "/admin/servers", map[string]any{"from_discovered": "ws-nobody"}), 404)
	got := r.admin("POST", "/admin/servers", map[string]any{"from_discovered": "ws-disc"})
	wantStatus(t, got, 201)
	var s admin.Server
	got.decode(t, &s)
	host, port := splitAddr(t, disc.Addr())
	if s.ID != "ws-disc" || s.IPAddress != host || s.AgentPort != port || s.Region != "eu-central" ||
		s.Labels["disk"] != "nvme" || s.Architecture != "amd64" {
		t.Errorf("added from gossip = %+v, want its gossiped address, region, labels and architecture", s)
	}
	r.admin("GET", "/admin/servers", nil).decode(t, &list)
	if len(list.Discovered) != 0 {
		t.Errorf("discovered after adding = %+v, want none", list.Discovered)
	}
}

func TestPatchServer(t *testing.T) {
	r := newRig(t, "ws-1")
	tests := []struct {
		name       string
		body       any
		wantStatus int
		wantDetail string
		check      func(t *testing.T, s admin.Server)
	}{
		{"drain", map[string]any{"state": "draining"}, 200, "", func(t *testing.T, s admin.Server) {
			if s.State != "draining" {
				t.Errorf("state = %q, want draining", s.State)
			}
		}},
		{"capacity overrides", map[string]any{"total_cpu": 4, "total_memory_mb": 8192, "total_disk_gb": 50,
			"total_bandwidth_mbps": 500, "max_workspaces": 3}, 200, "", func(t *testing.T, s admin.Server) {
			want := admin.Resources{CPU: 4, MemoryMB: 8192, DiskGB: 50, BandwidthMbps: 500}
			if s.Configured != want || s.Effective != want || s.MaxWorkspaces != 3 {
				t.Errorf("configured %+v effective %+v max %d, want %+v and 3", s.Configured, s.Effective, s.MaxWorkspaces, want)
			}
		}},
		{"labels", map[string]any{"labels": map[string]string{"gpu": "none"}}, 200, "", func(t *testing.T, s admin.Server) {
			if !cmp.Equal(s.Labels, map[string]string{"gpu": "none"}) {
				t.Errorf("labels = %v", s.Labels)
			}
		}},
		{"unknown state", map[string]any{"state": "paused"}, 400, `state "paused": want active, draining or cordoned`, nil},
		{"negative cpu", map[string]any{"total_cpu": -2}, 400, "total_cpu -2: want >= 0", nil},
		{"fractional memory", map[string]any{"total_memory_mb": 1.5}, 400, "total_memory_mb: want a whole number, got a JSON number 1.5", nil},
		{"labels not strings", map[string]any{"labels": map[string]any{"a": 1}}, 400, "labels: want a string, got a JSON number", nil},
		{"nothing", map[string]any{}, 400, "nothing to change", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.admin("PATCH", "/admin/servers/ws-1", tt.body)
			wantStatus(t, got, tt.wantStatus)
			if tt.wantDetail != "" {
				if d := got.detail(t); !strings.Contains(d, tt.wantDetail) {
					t.Errorf("detail = %q, want it to contain %q", d, tt.wantDetail)
				}
			}
			if tt.check != nil {
				var s admin.Server
				got.decode(t, &s)
				tt.check(t, s)
			}
		})
	}
	wantStatus(t, r.admin("PATCH", "/admin/servers/ws-nope", map[string]any{"state": "active"}), 404)
}

func TestDeleteServer(t *testing.T) {
	r := newRig(t, "ws-1", "ws-2")
	r.reserve("w1", "ws-1", 2, 4096)
	r.reserve("w2", "ws-1", 2, 4096)
	ctx := context.Background()
	// w1 has a container on the agent; a forced delete removes it.
	ctr, err := r.dialer.Client("ws-1", r.agents["ws-1"].Addr()).Create(ctx, wire.CreateContainerRequest{Name: "workspace-w1", Image: "img", Start: true, WorkspaceID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.db.UpdateWorkspace(ctx, "w1", func(w *registry.Workspace) error { w.ContainerID = ctr.ID; return nil }); err != nil {
		t.Fatal(err)
	}

	got := r.admin("DELETE", "/admin/servers/ws-1", nil)
	wantStatus(t, got, 409)
	if d := got.detail(t); !strings.Contains(d, `"ws-1" still has 2 workspaces`) || !strings.Contains(d, "?force=true") ||
		!strings.Contains(d, "draining") {
		t.Errorf("detail = %q, want the count and both ways out (drain, force)", d)
	}
	if ws, _ := r.db.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: "ws-1"}); len(ws) != 2 {
		t.Fatalf("workspaces after refusal = %d, want 2", len(ws))
	}

	wantStatus(t, r.admin("DELETE", "/admin/servers/ws-1?force=maybe", nil), 400)
	wantStatus(t, r.admin("DELETE", "/admin/servers/ws-1?force=true", nil), 204)
	wantStatus(t, r.admin("GET", "/admin/servers/ws-1", nil), 404)
	if ws, _ := r.db.ListWorkspaces(ctx, registry.WorkspaceFilter{ServerID: "ws-1"}); len(ws) != 0 {
		t.Errorf("workspace rows after forced delete = %d, want 0", len(ws))
	}
	if n := len(r.agents["ws-1"].Containers()); n != 0 {
		t.Errorf("containers left on the force-deleted server = %d, want 0", n)
	}
	// The eviction is on the record: one workspace.evicted per workspace,
	// after each record was dropped with the reason as its last status.
	events, err := r.db.ListEvents(ctx, registry.EventFilter{ServerID: "ws-1"})
	if err != nil {
		t.Fatal(err)
	}
	type evicted struct{ Server, Workspace, Message string }
	var gotEvicted []evicted
	for _, e := range events {
		if e.Kind == "workspace.evicted" {
			gotEvicted = append(gotEvicted, evicted{e.ServerID, e.WorkspaceID, e.Message})
		}
	}
	const msg = "server removed by an operator: container removed, record dropped (data kept)"
	wantEvicted := []evicted{{"ws-1", "w1", msg}, {"ws-1", "w2", msg}}
	less := func(a, b evicted) bool { return a.Workspace < b.Workspace }
	if diff := cmp.Diff(wantEvicted, gotEvicted, cmpopts.SortSlices(less)); diff != "" {
		t.Errorf("workspace.evicted events (-want +got):\n%s", diff)
	}
	if !hasEvent(events, registry.EventServerDeleted, "") {
		t.Errorf("no %s event for ws-1 in %+v", registry.EventServerDeleted, events)
	}
	for _, id := range []string{"w1", "w2"} {
		if !hasEvent(events, registry.EventWorkspaceDeleted, id) {
			t.Errorf("no %s event for %s", registry.EventWorkspaceDeleted, id)
		}
	}

	wantStatus(t, r.admin("DELETE", "/admin/servers/ws-2", nil), 204) // no workspaces: no force needed
	wantStatus(t, r.admin("DELETE", "/admin/servers/ws-2", nil), 404)
}

// hasEvent reports whether events has one of kind for workspace ("" = any).
func hasEvent(events []registry.Event, kind, workspace string) bool {
	for _, e := range events {
		if e.Kind == kind && (workspace == "" || e.WorkspaceID == workspace) {
			return true
		}
	}
	return false
}

func TestExplain(t *testing.T) {
	r := newRig(t, "ws-1")
	r.addServer("ws-draining", registry.Server{TotalCPU: 8, TotalMemoryMB: 16384, TotalDiskGB: 100}, fleet.HealthHealthy)
	r.addServer("ws-down", registry.Server{TotalCPU: 8, TotalMemoryMB: 16384, TotalDiskGB: 100}, fleet.HealthUnreachable)
	r.addServer("ws-small", registry.Server{TotalCPU: 1, TotalMemoryMB: 16384, TotalDiskGB: 100}, fleet.HealthHealthy)
	wantStatus(t, r.admin("PATCH", "/admin/servers/ws-draining", map[string]any{"state": "draining"}), 200)

	var got admin.Explanation
	res := r.admin("POST", "/admin/placements/explain", map[string]any{"tier": "starter", "repos": []string{"ignored"}})
	wantStatus(t, res, 200)
	res.decode(t, &got)
	want := admin.Explanation{
		Tier:     "starter",
		Request:  admin.PlacementRequest{Resources: admin.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}, Architecture: "amd64"},
		Strategy: "spread",
		Chosen:   &admin.Candidate{ServerID: "ws-1", Hostname: "ws-1", Rank: 1},
		Reason:   "Selected server with lowest utilization",
		Summary:  "state draining on 1 server, health unreachable on 1 server, insufficient cpu on 1 server",
		Servers: []admin.Verdict{
			{ServerID: "ws-1", Eligible: true, Rank: 1},
			{ServerID: "ws-draining", Rejection: "state draining", Reason: "state draining"},
			{ServerID: "ws-down", Rejection: "health unreachable", Reason: "health unreachable"},
			{ServerID: "ws-small", Rejection: "insufficient cpu", Reason: "insufficient cpu: need 2 cores, have 1 cores"},
		},
	}
	ignoreScores := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Score" }, cmp.Ignore())
	if diff := cmp.Diff(want, got, ignoreScores); diff != "" {
		t.Errorf("explain (-want +got):\n%s", diff)
	}
	if got.Chosen == nil || got.Chosen.Score <= 0 || got.Servers[0].Score != got.Chosen.Score {
		t.Errorf("chosen = %+v, servers[0] = %+v: want a positive score on both", got.Chosen, got.Servers[0])
	}

	// Nothing fits: the dry run says why instead of failing.
	res = r.admin("POST", "/admin/placements/explain", map[string]any{"tier": "starter", "region_preference": "mars"})
	wantStatus(t, res, 200)
	got = admin.Explanation{}
	res.decode(t, &got)
	if got.Chosen != nil || got.Error != "No capacity available in mars region" || !strings.Contains(got.Summary, "region mismatch on 1 server") {
		t.Errorf("explain in mars = chosen %+v, error %q, summary %q; want none, the region error and the mismatch", got.Chosen, got.Error, got.Summary)
	}
	wantStatus(t, r.admin("POST", "/admin/placements/explain", "[1]"), 400)
}

func TestCluster(t *testing.T) {
	r := newRig(t, "ws-1", "ws-2")
	r.addServer("ws-3", registry.Server{TotalCPU: 4, TotalMemoryMB: 8192, TotalDiskGB: 50}, fleet.HealthUnreachable)
	wantStatus(t, r.admin("PATCH", "/admin/servers/ws-2", map[string]any{"state": "draining"}), 200)
	r.reserve("w1", "ws-1", 2, 4096)
	r.reserve("w2", "ws-1", 1, 1024)
	if _, err := r.db.SetWorkspaceStatus(context.Background(), "w2", fleet.StatusRunning, ""); err != nil {
		t.Fatal(err)
	}
	r.gossip.set(agentMember("ws-1", r.agents["ws-1"].Addr()))

	var got admin.Cluster
	res := r.admin("GET", "/admin/cluster", nil)
	wantStatus(t, res, 200)
	res.decode(t, &got)
	want := admin.Cluster{
		Servers: admin.ClusterServers{Total: 3,
			ByHealth: map[string]int{"healthy": 2, "degraded": 0, "unhealthy": 0, "unreachable": 1, "unknown": 0},
			ByState:  map[string]int{"active": 2, "draining": 1, "cordoned": 0}},
		Workspaces: admin.Counts{Total: 2, By: map[string]int{"creating": 1, "running": 1, "stopping": 0, "stopped": 0,
			"error": 0, "pending_deletion": 0}},
		Capacity: admin.ClusterCapacity{
			// ws-1's gossiped 4 cores and 8 GiB are below its configured 8 and
			// 16 GiB, so they are its effective capacity.
			Effective: admin.Resources{CPU: 4 + 8 + 4, MemoryMB: 8192 + 16384 + 8192, DiskGB: 100 + 100 + 50, BandwidthMbps: 3000},
			Reserved:  admin.Resources{CPU: 3, MemoryMB: 5120, DiskGB: 20, BandwidthMbps: 200},
			Available: admin.Resources{CPU: 1 + 8 + 4, MemoryMB: (8192 - 5120) + 16384 + 8192, DiskGB: 80 + 100 + 50, BandwidthMbps: 2800},
		},
		Members:   admin.Counts{Total: 1, By: map[string]int{"alive": 1}},
		Use:       admin.Use{CPUCores: 4, CPUPercent: 50, MemoryUsedMB: 2048, MemoryTotalMB: 8192, DiskUsedGB: 20, DiskTotalGB: 100},
		Placement: admin.ClusterPlacement{Schedulable: 1},
	}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("GET /admin/cluster (-want +got):\n%s", diff)
	}
}

func TestServerWorkspacesAndEvents(t *testing.T) {
	r := newRig(t, "ws-1", "ws-2")
	r.reserve("w1", "ws-1", 2, 4096)
	r.reserve("w2", "ws-2", 2, 4096)

	var ws struct {
		ServerID   string            `json:"server_id"`
		Workspaces []admin.Workspace `json:"workspaces"`
		Total      int               `json:"total_count"`
	}
	r.admin("GET", "/admin/servers/ws-1/workspaces", nil).decode(t, &ws)
	want := []admin.Workspace{{ID: "w1", UserID: "u1", SessionID: "s1", ServerID: "ws-1", Status: "creating", Tier: "starter",
		Reserved: admin.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 10, BandwidthMbps: 100}, Epoch: 1}}
	if diff := cmp.Diff(want, ws.Workspaces, ignoreTimes); diff != "" || ws.Total != 1 || ws.ServerID != "ws-1" {
		t.Errorf("workspaces of ws-1 (-want +got):\n%s (total %d)", diff, ws.Total)
	}
	wantStatus(t, r.admin("GET", "/admin/servers/ws-9/workspaces", nil), 404)

	tests := []struct {
		query      string
		wantStatus int
		wantKinds  []string
	}{
		{"?server_id=ws-1", 200, []string{"workspace.placed", "server.health", "server.registered"}},
		{"?server_id=ws-1&limit=1", 200, []string{"workspace.placed"}},
		{"?limit=2", 200, []string{"workspace.placed", "workspace.placed"}},
		{"?limit=0", 400, nil},
		{"?limit=x", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := r.admin("GET", "/admin/events"+tt.query, nil)
			wantStatus(t, got, tt.wantStatus)
			if tt.wantKinds == nil {
				return
			}
			var body struct{ Events []admin.Event }
			got.decode(t, &body)
			kinds := []string{}
			for _, e := range body.Events {
				kinds = append(kinds, e.Kind)
				if e.At == nil || !strings.HasSuffix(*e.At, "Z") {
					t.Errorf("event at = %v, want RFC 3339 UTC", e.At)
				}
			}
			if diff := cmp.Diff(tt.wantKinds, kinds); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerStats(t *testing.T) {
	r := newRig(t, "ws-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := r.dialer.Client("ws-1", r.agents["ws-1"].Addr())
	if _, err := client.Create(ctx, wire.CreateContainerRequest{Name: "workspace-w1", Image: "img", Start: true,
		WorkspaceID: "w1", Resources: wire.Resources{CPU: 2, MemoryMB: 1024}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Create(ctx, wire.CreateContainerRequest{Name: "workspace-w2", Image: "img", WorkspaceID: "w2"}); err != nil {
		t.Fatal(err)
	}

	var got admin.ServerStats
	res := r.admin("GET", "/admin/servers/ws-1/stats", nil)
	wantStatus(t, res, 200)
	res.decode(t, &got)
	if c := got.Capacity; c.CPUCores != 4 || c.MemoryTotalMB != 8192 || c.MemoryUsedMB != 2048 || c.DiskTotalGB != 100 ||
		c.DiskUsedGB != 20 || c.Containers != 2 || c.ContainersRunning != 1 {
		t.Errorf("capacity = %+v, want the agent's 4 cores, 2/8 GiB used, 20/100 GB used, 2 containers, 1 running", c)
	}
	byWorkspace := map[string]admin.ContainerUsage{}
	for _, c := range got.Containers {
		byWorkspace[c.WorkspaceID] = c
	}
	if u := byWorkspace["w1"].Usage; u == nil || u.CPUPercent != 12.5 || u.MemoryUsedMB != 256 || u.MemoryLimitMB != 1024 {
		t.Errorf("w1 usage = %+v, want the agent's sample", u)
	}
	if w2 := byWorkspace["w2"]; w2.State != "created" || w2.Usage != nil {
		t.Errorf("w2 = %+v, want created and not sampled", w2)
	}
	if got.Partial || got.ServerID != "ws-1" {
		t.Errorf("partial = %v, server = %q", got.Partial, got.ServerID)
	}

	wantStatus(t, r.admin("GET", "/admin/servers/ws-9/stats", nil), 404)
	r.agents["ws-1"].Close()
	res = r.admin("GET", "/admin/servers/ws-1/stats", nil)
	wantStatus(t, res, 502)
	if d := res.detail(t); !strings.Contains(d, `agent of server "ws-1"`) {
		t.Errorf("detail = %q, want it to name the server", d)
	}
}
