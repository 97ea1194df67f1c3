package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/agentproc"
	"berth/scheduler/internal/config"
	"berth/shared/testutil"
)

// dockerAPI is a plain HTTP client of the Docker Engine API on the local
// unix socket: the baseline, with nothing of berth in between.
func dockerAPI() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", "/var/run/docker.sock")
	}}}
}

func dockerDo(b *testing.B, c *http.Client, method, path string, body any, want int) []byte {
	b.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://docker/v1.41"+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out
}

// BenchmarkCreateToRunning compares, on the same Docker daemon and image:
//   - docker_api: a plain Docker API create + start of a container with the
//     same limits and a bind-mounted home;
//   - berth: POST /workspaces through the whole scheduler (HTTP API,
//     placement, registry transactions) and a real agent process over mTLS,
//     until the 201 that says the container runs.
//
// The ratio berth/docker_api is berth's overhead on create-to-running.
func BenchmarkCreateToRunning(b *testing.B) {
	if testing.Short() {
		b.Skip("needs Docker")
	}
	image := agentproc.Image()
	b.Run("docker_api", func(b *testing.B) {
		c := dockerAPI()
		home := b.TempDir()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			name := fmt.Sprintf("berth-bench-plain-%d-%d", time.Now().UnixNano(), i)
			var created struct{ ID string }
			out := dockerDo(b, c, http.MethodPost, "/containers/create?name="+name, map[string]any{
				"Image": image, "Labels": map[string]string{"berth.bench": "true"},
				"HostConfig": map[string]any{"NanoCpus": 2e9, "Memory": 4096 << 20, "MemorySwap": 4096 << 20, "Init": true,
					"Binds": []string{home + ":/home/dev"}},
			}, http.StatusCreated)
			json.Unmarshal(out, &created)
			dockerDo(b, c, http.MethodPost, "/containers/"+created.ID+"/start", nil, http.StatusNoContent)
			b.StopTimer()
			dockerDo(b, c, http.MethodDelete, "/containers/"+created.ID+"?force=true", nil, http.StatusNoContent)
			b.StartTimer()
		}
	})
	b.Run("berth", func(b *testing.B) {
		ag := agentproc.Start(b, "ws-bench")
		seeds, _ := json.Marshal([]map[string]any{{"id": "ws-bench", "hostname": "ws-bench", "ip_address": "127.0.0.1",
			"agent_port": mustPort(ag.Addr), "architecture": "amd64"}})
		cfg := config.Default()
		cfg.DataDir = b.TempDir()
		cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = ag.Scheduler.Cert, ag.Scheduler.Key, ag.Scheduler.CA
		cfg.ServiceToken = "bench-token"
		cfg.WorkspaceServers = string(seeds)
		cfg.WorkspaceImage = image
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, err := New(ctx, cfg, hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		defer func() { cancel(); a.Close() }()
		// No gossip here: give the server the machine's capacity by hand.
		capa, err := ag.Client.Capacity(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := setCapacity(ctx, a, "ws-bench", 1e6, capa.MemoryTotalMB*1000, int64(capa.DiskTotalGB)); err != nil {
			b.Fatal(err)
		}
		a.Background(ctx)
		testutil.Eventually(b, 10*time.Second, "agent healthy", func() bool {
			h, ok := a.tracker.Health("ws-bench")
			return ok && h == "healthy"
		})
		srv := httptest.NewServer(a.Handler())
		defer srv.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			id := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
			body, _ := json.Marshal(map[string]any{"session_id": "s", "workspace_id": id, "config": map[string]any{"tier": "starter"}})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/workspaces", bytes.NewReader(body))
			req.Header.Set("X-Internal-Service-Token", "bench-token")
			req.Header.Set("X-User-ID", "bench")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || !bytes.Contains(out, []byte(`"status":"running"`)) {
				b.Fatalf("create: %d %s", resp.StatusCode, out)
			}
			b.StopTimer()
			del, _ := http.NewRequest(http.MethodDelete, srv.URL+"/workspaces/"+id, nil)
			del.Header.Set("X-Internal-Service-Token", "bench-token")
			del.Header.Set("X-User-ID", "bench")
			resp, err = http.DefaultClient.Do(del)
			if err != nil {
				b.Fatalf("delete: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				b.Fatalf("delete: %d", resp.StatusCode)
			}
			b.StartTimer()
		}
	})
}
