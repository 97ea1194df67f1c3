package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
