package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"berth/scheduler/internal/config"
)

// /metrics (no auth, as the compute service had it) reports placements,
// workspaces by status, server health and agent call latency.
func TestMetrics(t *testing.T) {
	srv, _ := benchApp(t, 2)
	postWorkspace(t, srv.URL)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`berth_placements_total{result="placed",strategy="spread"} 1`,
		`berth_workspaces{status="running"} 1`,
		`berth_server_health{health="healthy",server="ws-00"} 1`,
		`berth_agent_request_duration_seconds_count{op="POST /v1/containers",outcome="ok"} 1`,
		`berth_placement_duration_seconds_count 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// With no servers registered the scheduler still starts, answers /health
// and /ready, and answers 503 on create (issue 3, item 0).
func TestNoServers(t *testing.T) {
	srv, _ := benchApp(t, 0)
	for path, want := range map[string]string{"/health": `"status":"healthy"`, "/ready": `"status":"ready"`} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/workspaces", strings.NewReader(`{"session_id":"s","config":{"tier":"starter"}}`))
	req.Header.Set("X-Internal-Service-Token", "bench-token")
	req.Header.Set("X-User-ID", "u")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"detail":"No servers available for workspace creation"}`; resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(string(body)) != want {
		t.Errorf("create with no servers = %d %s, want 503 %s", resp.StatusCode, body, want)
	}
}

// CORS for the configured origins, with credentials (contract §1.3).
func TestCORS(t *testing.T) {
	srv, _ := benchApp(t, 0)
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/workspaces", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight: allow-origin %q, credentials %q", got, resp.Header.Get("Access-Control-Allow-Credentials"))
	}
}

// No CORS on /admin (issue 12): neither a preflight nor a request from the
// allowed origin gets CORS headers there, so no other site's script can
// call the admin API with the panel's cookie.
func TestNoCORSOnAdmin(t *testing.T) {
	srv, _ := benchApp(t, 0, func(c *config.Config) { c.AdminToken = "admin-token-for-tests" })
	for _, tt := range []struct{ method, path string }{
		{http.MethodOptions, "/admin/servers"},
		{http.MethodOptions, "/admin/servers/ws-1"},
		{http.MethodOptions, "/admin/ui/signin"},
		{http.MethodGet, "/admin/servers"},
		{http.MethodGet, "/admin/nope"},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		req.Header.Set("Origin", "http://localhost:3000")
		req.Header.Set("Access-Control-Request-Method", "PATCH")
		req.Header.Set("Authorization", "Bearer admin-token-for-tests")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for name := range resp.Header {
			if strings.HasPrefix(name, "Access-Control-") {
				t.Errorf("%s %s: answer has %s: %q, want no CORS headers on /admin", tt.method, tt.path, name, resp.Header.Get(name))
			}
		}
	}
}
