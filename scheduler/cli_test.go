package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/admin"
)

// fakeAdmin is a hand-written admin API: it records each request and
// answers from a table keyed by "METHOD path?query".
type fakeAdmin struct {
	answers map[string]fakeAnswer
	got     []string // "METHOD path?query body"
}

type fakeAnswer struct {
	status int
	body   any
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer cli-token" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"detail":"Invalid admin token"}`)
		return
	}
	key := r.Method + " " + r.URL.RequestURI()
	body, _ := io.ReadAll(r.Body)
	f.got = append(f.got, strings.TrimSpace(key+" "+string(body)))
	a, ok := f.answers[key]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"detail":"Not Found"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	if a.body != nil {
		json.NewEncoder(w).Encode(a.body)
	}
}

func TestServersCommand(t *testing.T) {
	list := admin.ServerList{
		Servers: []admin.Server{
			{ID: "ws-local-1", AgentAddress: "ws-local-1:7443", Region: "local", State: "active", Health: "healthy",
				Reserved: admin.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20}, Effective: admin.Resources{CPU: 4, MemoryMB: 7990, DiskGB: 100},
				Use: &admin.Use{CPUCores: 4, CPUPercent: 12}, Workspaces: 1},
			{ID: "ws-eu-1", AgentAddress: "10.0.0.5:7443", State: "draining", Health: "unreachable",
				LastError: "2 probes failed: connection refused", Effective: admin.Resources{CPU: 0.5, MemoryMB: 512},
				MaxWorkspaces: 10},
		},
		Discovered: []admin.Discovered{{ID: "ws-new", AgentAddress: "ws-new:7443", Region: "eu", Architecture: "amd64",
			GossipState: "alive", Version: "v1"}},
	}
	drained := admin.Server{ID: "ws-local-1", State: "draining", Workspaces: 1}
	added := admin.Server{ID: "ws-3", AgentAddress: "10.1.2.3:7444", State: "active", Health: "unknown"}

	tests := []struct {
		name    string
		args    []string
		answers map[string]fakeAnswer
		wantOut string
		wantErr string
		wantReq []string
	}{
		{
			name:    "list",
			args:    []string{"list"},
			answers: map[string]fakeAnswer{"GET /admin/servers": {200, list}},
			wantOut: `ID          STATE     HEALTH       AGENT            REGION  CPU RES/EFF  MEMORY RES/EFF  DISK RES/EFF  CPU USE  WORKSPACES  LAST ERROR
ws-local-1  active    healthy      ws-local-1:7443  local   2/4          4.0 GB/7.8 GB   20/100 GB     12%      1/∞         -
ws-eu-1     draining  unreachable  10.0.0.5:7443    -       0/0.5        0 MB/512 MB     0/0 GB        -        0/10        2 probes failed: connection refused

Discovered (gossiping, not registered; add with: scheduler servers add --from-discovered ID)
ID      AGENT        REGION  ARCH   GOSSIP  VERSION
ws-new  ws-new:7443  eu      amd64  alive   v1
`,
			wantReq: []string{"GET /admin/servers"},
		},
		{
			name:    "add with port in the address",
			args:    []string{"add", "--id", "ws-3", "--address", "10.1.2.3:7444", "--labels", "disk=nvme, zone=a"},
			answers: map[string]fakeAnswer{"POST /admin/servers": {201, added}},
			wantOut: "added ws-3 at 10.1.2.3:7444 (state active, health unknown)\n",
			wantReq: []string{`POST /admin/servers {"id":"ws-3","ip_address":"10.1.2.3","agent_port":7444,"labels":{"disk":"nvme","zone":"a"}}`},
		},
		{
			name:    "add from gossip",
			args:    []string{"add", "--from-discovered", "ws-new"},
			answers: map[string]fakeAnswer{"POST /admin/servers": {201, added}},
			wantOut: "added ws-3 at 10.1.2.3:7444 (state active, health unknown)\n",
			wantReq: []string{`POST /admin/servers {"from_discovered":"ws-new","labels":null}`},
		},
		{
			name: "add refused: the API's detail is the error",
			args: []string{"add", "--id", "ws-3", "--address", "10.1.2.3"},
			answers: map[string]fakeAnswer{"POST /admin/servers": {400, map[string]string{
				"detail": "agent address 10.1.2.3:7443 is unreachable from the scheduler: connection refused"}}},
			wantErr: "agent address 10.1.2.3:7443 is unreachable from the scheduler: connection refused (400 Bad Request)",
			wantReq: []string{`POST /admin/servers {"id":"ws-3","ip_address":"10.1.2.3","agent_port":7443,"labels":null}`},
		},
		{
			name:    "drain",
			args:    []string{"drain", "ws-local-1"},
			answers: map[string]fakeAnswer{"PATCH /admin/servers/ws-local-1": {200, drained}},
			wantOut: "ws-local-1 is draining (1 workspace)\n",
			wantReq: []string{`PATCH /admin/servers/ws-local-1 {"state":"draining"}`},
		},
		{
			name:    "remove with force after the id",
			args:    []string{"remove", "ws-eu-1", "--force"},
			answers: map[string]fakeAnswer{"DELETE /admin/servers/ws-eu-1?force=true": {204, nil}},
			wantOut: "removed ws-eu-1\n",
			wantReq: []string{"DELETE /admin/servers/ws-eu-1?force=true"},
		},
		{
			name: "remove refused",
			args: []string{"remove", "ws-local-1"},
			answers: map[string]fakeAnswer{"DELETE /admin/servers/ws-local-1": {409, map[string]string{
				"detail": `server "ws-local-1" still has 1 workspace`}}},
			wantErr: `server "ws-local-1" still has 1 workspace (409 Conflict)`,
			wantReq: []string{"DELETE /admin/servers/ws-local-1"},
		},
		{name: "no subcommand", args: nil, wantErr: "usage:"},
		{name: "drain without id", args: []string{"drain"}, wantErr: "usage:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAdmin{answers: tt.answers}
			srv := httptest.NewServer(api)
			defer srv.Close()
			client := adminClient{base: srv.URL, token: "cli-token", http: &http.Client{Timeout: 5 * time.Second}}
			var out bytes.Buffer
			err := runServers(context.Background(), client, &out, tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantOut, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantReq, api.got); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}
