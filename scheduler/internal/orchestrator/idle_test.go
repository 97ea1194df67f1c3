package orchestrator_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// lastUsed sets a workspace's recorded last activity, as if nobody had
// used it since.
func (r *rig) lastUsed(id string, at time.Time) {
	r.t.Helper()
	if _, err := r.db.UpdateWorkspace(context.Background(), id, func(w *registry.Workspace) error {
		w.LastActivity = at
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
}

// busyCPU makes the agent answer every stats sample with cpu% busy.
func busyCPU(r *rig, server string, cpu float64) {
	r.agents[server].Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			if strings.HasSuffix(q.URL.Path, "/stats") {
				_ = json.NewEncoder(w).Encode(wire.ContainerStats{CPUPercent: cpu, CPULimitCores: 2})
				return
			}
			next.ServeHTTP(w, q)
		})
	})
}

func TestIdleStop(t *testing.T) {
	ctx := context.Background()
	hour := time.Hour
	tests := []struct {
		name      string
		hours     int           // the workspace's timeout_hours; 0 = the default
		unused    time.Duration // since the recorded last activity
		noted     time.Duration // since a stream last noted use; 0 = never
		cpu       float64       // the agent's CPU sample
		wantStop  bool
		wantAfter bool // last_activity moved forward
	}{
		{name: "used recently", unused: 10 * time.Minute},
		{name: "unused past the default", unused: 31 * time.Minute, wantStop: true},
		{name: "a terminal or the preview used it", unused: 3 * hour, noted: time.Second, wantAfter: true},
		{name: "busy CPU counts as use", unused: 3 * hour, cpu: 80, wantAfter: true},
		{name: "idle CPU does not", unused: 3 * hour, cpu: 1, wantStop: true},
		{name: "its own limit is longer", hours: 2, unused: hour},
		{name: "and also runs out", hours: 2, unused: 2*hour + time.Minute, wantStop: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 4, "ws-1")
			o := r.with(func(c *orchestrator.Config, _ *orchestrator.Deps) { c.IdleTimeout = 30 * time.Minute })
			req := createReq("w1", "alice")
			req.Config.Settings.IdleTimeoutHours = tt.hours
			ws, err := o.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			busyCPU(r, "ws-1", tt.cpu)
			r.lastUsed("w1", time.Now().Add(-tt.unused))
			if tt.noted > 0 {
				o.NoteActivity("w1")
			}
			before, _ := o.Get(ctx, "w1")

			stopped := o.IdleOnce(ctx)
			got, _ := o.Get(ctx, "w1")
			if (stopped == 1) != tt.wantStop || (got.Status == fleet.StatusStopped) != tt.wantStop {
				t.Fatalf("IdleOnce stopped %d; status %s (%s); want stopped = %v", stopped, got.Status, got.StatusReason, tt.wantStop)
			}
			if tt.wantStop {
				if !strings.HasPrefix(got.StatusReason, "idle: no activity for ") {
					t.Errorf("reason %q", got.StatusReason)
				}
				if c := r.agents["ws-1"].Containers(); len(c) != 1 || c[0].State == "running" || c[0].ID != ws.ContainerID {
					t.Errorf("container after the idle stop: %+v; want it stopped, not removed", c)
				}
				if evs := r.events("w1"); !slices.Contains(evs, orchestrator.EventIdleStopped+"@ws-1") {
					t.Errorf("events %v lack %s", evs, orchestrator.EventIdleStopped)
				}
				if notes := r.notes.all(); len(notes) == 0 || notes[len(notes)-1].Status != fleet.StatusStopped {
					t.Errorf("notifier: %+v; want the stop announced", notes)
				}
			}
			if moved := got.LastActivity.After(before.LastActivity); moved != tt.wantAfter {
				t.Errorf("last_activity moved forward = %v (from %s to %s); want %v", moved, before.LastActivity, got.LastActivity, tt.wantAfter)
			}
			if at, ok := o.IdleStopAt(got); ok == tt.wantStop || ok && !at.After(time.Now()) {
				t.Errorf("IdleStopAt = %s, %v; want a time to come while it runs, none once stopped", at, ok)
			}
		})
	}
}

// A GPU tier's container gets a device request for its GPUs (the NVIDIA
// toolkit's capabilities); other tiers get none.
func TestGPUDeviceRequest(t *testing.T) {
	r := newRig(t, 4)
	r.addServer(registry.Server{ID: "gpu-1", Architecture: "amd64", Region: "local", TotalCPU: 64, TotalMemoryMB: 1 << 20,
		TotalDiskGB: 1000, GPUType: "NVIDIA RTX 4000 SFF Ada", GPUCount: 2})
	creates := captureCreates(t, r.agents["gpu-1"])
	for _, tier := range []string{"gpu_starter", "starter"} {
		req := createReq("w-"+tier, "alice")
		req.Config.Tier = tier
		if _, err := r.orch.Create(context.Background(), req); err != nil {
			t.Fatalf("create %s: %v", tier, err)
		}
	}
	got := creates()
	if len(got) != 2 {
		t.Fatalf("creates: %d, want 2", len(got))
	}
	want := &wire.GPURequest{Count: 1, Capabilities: []string{"gpu", "compute", "utility"}}
	if diff := cmp.Diff(want, got[0].GPU); diff != "" {
		t.Errorf("gpu_starter's device request (-want +got):\n%s", diff)
	}
	if got[0].Env["NVIDIA_VISIBLE_DEVICES"] != "all" {
		t.Errorf("gpu_starter's env: %v", got[0].Env)
	}
	if got[1].GPU != nil || got[1].Env["NVIDIA_VISIBLE_DEVICES"] != "" {
		t.Errorf("starter got %+v and env %v; want no GPU", got[1].GPU, got[1].Env)
	}
}
