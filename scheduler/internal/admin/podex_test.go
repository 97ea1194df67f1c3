package admin_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/testutil"
)

func TestTestConnection(t *testing.T) {
	r := newRig(t)
	agent := r.startAgent("ws-probe")
	host, port := splitAddr(t, agent.Addr())
	closed := testutil.FreePort(t)
	plain := plainServer(t) // speaks HTTP, not TLS

	tests := []struct {
		name string
		body map[string]any
		want admin.TestConnectionResponse
	}{
		{"agent reachable over mTLS", map[string]any{"ip_address": host, "docker_port": port, "tls_enabled": true,
			"compute_service_url": "http://ignored"},
			admin.TestConnectionResponse{Success: true, Message: "Connection successful", DockerInfo: &admin.DockerInfo{
				ServerVersion: "fake-1.0", OS: "Fake Linux", Architecture: "x86_64", MemoryTotal: 8 << 30, CPUs: 4, Images: 1}}},
		{"port as a string, tls off", map[string]any{"ip_address": host, "docker_port": fmt.Sprint(port), "tls_enabled": "false"},
			admin.TestConnectionResponse{Success: true, Message: "Connection successful", DockerInfo: &admin.DockerInfo{
				ServerVersion: "fake-1.0", OS: "Fake Linux", Architecture: "x86_64", MemoryTotal: 8 << 30, CPUs: 4, Images: 1}}},
		{"nothing listening", map[string]any{"ip_address": "127.0.0.1", "docker_port": closed, "tls_enabled": true},
			admin.TestConnectionResponse{Message: "Connection refused - check if Docker is running and accessible"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.service("POST", "/servers/test-connection", tt.body)
			wantStatus(t, res, 200)
			var got admin.TestConnectionResponse
			res.decode(t, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if !bytes.Contains(res.body, []byte(`"error":null`)) {
				t.Errorf("body %s: want error null", res.body)
			}
		})
	}
	// Not a TLS server: a certificate error, as the contract's table says.
	plainHost, plainPort := splitAddr(t, plain)
	var got admin.TestConnectionResponse
	r.service("POST", "/servers/test-connection", map[string]any{"ip_address": plainHost, "docker_port": plainPort, "tls_enabled": true}).decode(t, &got)
	if got.Success || !strings.HasPrefix(got.Message, "TLS/Certificate error: ") {
		t.Errorf("plain HTTP server: %+v, want a TLS/Certificate error", got)
	}

	// Probing holds nothing per address (issue 12: a transport leaked per
	// address): every probe shares one transport that keeps no connection,
	// and the dialer caches no client for a probed address.
	if n := r.dialer.Cached(); n != 0 {
		t.Errorf("after probing %d addresses the dialer caches %d clients, want 0", len(tests)+1, n)
	}

	// Validation is FastAPI's 422 list.
	res := r.service("POST", "/servers/test-connection", map[string]any{"ip_address": 5, "tls_enabled": true})
	wantStatus(t, res, 422)
	var body struct {
		Detail []struct {
			Type string `json:"type"`
			Loc  []any  `json:"loc"`
			Msg  string `json:"msg"`
		} `json:"detail"`
	}
	res.decode(t, &body)
	gotLocs := []string{}
	for _, d := range body.Detail {
		gotLocs = append(gotLocs, fmt.Sprintf("%s %v %s", d.Type, d.Loc, d.Msg))
	}
	wantLocs := []string{"string_type [body ip_address] Input should be a valid string", "missing [body docker_port] Field required"}
	if diff := cmp.Diff(wantLocs, gotLocs); diff != "" {
		t.Errorf("422 detail (-want +got):\n%s", diff)
	}

	// A body past the limit is a 413 that says so, never a cut body's 422.
	big := r.service("POST", "/servers/test-connection", `{"ip_address": "`+strings.Repeat("x", 1<<20)+`"}`)
	wantStatus(t, big, 413)
	if d := big.detail(t); !strings.Contains(d, "at most 1048576 bytes") {
		t.Errorf("detail = %q, want the limit", d)
	}
}

func TestImages(t *testing.T) {
	r := newRig(t, "ws-1")
	r.addServer("ws-down", registry.Server{}, fleet.HealthUnhealthy)
	tests := []struct {
		name string
		path string
		want string
	}{
		{"healthy server", "/servers/ws-1/images",
			`{"server_id":"ws-1","images":[{"id":"sha256:ababa","tags":["berth/workspace:dev"],"size_mb":300,"created":"2025-01-02T03:04:05Z"}],"total_count":1}`},
		{"unknown server", "/servers/ws-nope/images", `{"server_id":"ws-nope","images":[],"total_count":0}`},
		{"unhealthy server", "/servers/ws-down/images", `{"server_id":"ws-down","images":[],"total_count":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.service("GET", tt.path, nil)
			wantStatus(t, res, 200)
			if got := strings.TrimSpace(string(res.body)); got != tt.want {
				t.Errorf("body = %s\nwant   %s", got, tt.want)
			}
		})
	}
}

func TestPullImage(t *testing.T) {
	r := newRig(t, "ws-1", "ws-2")
	r.agents["ws-2"].FailPull("pull access denied for nope")
	tests := []struct {
		name string
		path string
		body any
		want admin.PullResponse
	}{
		{"success, default tag", "/servers/ws-1/images/pull", map[string]any{"image": "alpine"},
			admin.PullResponse{Success: true, Message: "Successfully pulled alpine:latest", Image: "alpine:latest", ServerID: "ws-1"}},
		{"docker error", "/servers/ws-2/images/pull", map[string]any{"image": "nope", "tag": "1"},
			admin.PullResponse{Message: "Docker API error: pull access denied for nope", Image: "nope:1", ServerID: "ws-2"}},
		{"unknown server", "/servers/ws-9/images/pull", map[string]any{"image": "alpine", "tag": "3"},
			admin.PullResponse{Message: "Server ws-9 not available in compute service", Image: "alpine:3", ServerID: "ws-9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.service("POST", tt.path, tt.body)
			wantStatus(t, res, 200)
			var got admin.PullResponse
			res.decode(t, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	var imgs admin.ImagesResponse
	r.service("GET", "/servers/ws-1/images", nil).decode(t, &imgs)
	if imgs.TotalCount != 2 || imgs.Images[1].Tags[0] != "alpine:latest" {
		t.Errorf("images after pull = %+v, want alpine:latest added", imgs)
	}

	// Streamed: the agent's progress lines, then the final answer; the
	// agent's own final line (done or error) is not passed on.
	streamed := []struct {
		name         string
		path         string
		body         any
		wantProgress []admin.PullProgress
		wantFinal    admin.PullResponse
	}{
		{"success", "/servers/ws-1/images/pull?stream=1", map[string]any{"image": "busybox", "tag": "1.36"},
			[]admin.PullProgress{{Status: "Pulling from busybox", ID: "1.36"},
				{Status: "Downloading", ID: "layer1", Progress: "[=====>    ] 5MB/10MB"},
				{Status: "Status: Downloaded newer image for busybox:1.36"}},
			admin.PullResponse{Success: true, Message: "Successfully pulled busybox:1.36", Image: "busybox:1.36", ServerID: "ws-1"}},
		{"docker error", "/servers/ws-2/images/pull?stream=true", map[string]any{"image": "nope", "tag": "1"},
			[]admin.PullProgress{{Status: "Pulling from nope", ID: "1"},
				{Status: "Downloading", ID: "layer1", Progress: "[=====>    ] 5MB/10MB"}},
			admin.PullResponse{Message: "Docker API error: pull access denied for nope", Image: "nope:1", ServerID: "ws-2"}},
	}
	for _, tt := range streamed {
		t.Run("streamed "+tt.name, func(t *testing.T) {
			res := r.service("POST", tt.path, tt.body)
			wantStatus(t, res, 200)
			if ct := res.header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
			}
			var lines []string
			sc := bufio.NewScanner(bytes.NewReader(res.body))
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			if len(lines) == 0 {
				t.Fatal("no lines, want progress lines and the answer")
			}
			var progress []admin.PullProgress
			for _, l := range lines[:len(lines)-1] {
				var p admin.PullProgress
				if err := json.Unmarshal([]byte(l), &p); err != nil {
					t.Fatalf("progress line %s: %v", l, err)
				}
				progress = append(progress, p)
			}
			if diff := cmp.Diff(tt.wantProgress, progress); diff != "" {
				t.Errorf("progress lines (-want +got):\n%s", diff)
			}
			var final admin.PullResponse
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &final); err != nil {
				t.Fatalf("final line %s: %v", lines[len(lines)-1], err)
			}
			if diff := cmp.Diff(tt.wantFinal, final); diff != "" {
				t.Errorf("final line (-want +got):\n%s", diff)
			}
		})
	}

	wantStatus(t, r.service("POST", "/servers/ws-1/images/pull", map[string]any{"tag": "x"}), 422)
	wantStatus(t, r.service("POST", "/servers/ws-1/images/pull", nil), 422)
}
