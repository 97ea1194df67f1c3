package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// place records a workspace of tier on server without a container, as
// placement would have reserved it.
func place(t *testing.T, r *rig, server, id, tier string) registry.Workspace {
	t.Helper()
	ctx := context.Background()
	s := tiers.Builtin().Resolve(tier)
	ws := registry.Workspace{ID: id, UserID: "u1", SessionID: "s1", Tier: tier, ServerID: server,
		Reservation: fleet.Resources{CPU: s.VCPU, MemoryMB: s.MemoryMB, DiskGB: s.StorageGB, BandwidthMbps: s.BandwidthMbps}}
	if _, err := r.db.ReserveAndInsert(ctx, ws, registry.Credentials{}, registry.Limits{}); err != nil {
		t.Fatal(err)
	}
	ws, err := r.db.GetWorkspace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// optionSummary is each option as "tier ok" or "tier: resource need N, have
// M" (the shortfall), in order.
func optionSummary(opts []orchestrator.TierOption) []string {
	out := []string{}
	for _, o := range opts {
		if o.Shortfall == nil {
			out = append(out, o.Tier+" ok")
			continue
		}
		s := o.Shortfall
		out = append(out, fmt.Sprintf("%s: %s need %g, have %g", o.Tier, s.Resource, s.Need, s.Have))
	}
	return out
}

func TestScaleOptions(t *testing.T) {
	tests := []struct {
		name   string
		server registry.Server // the workspace's server
		tier   string
		want   []string
	}{
		{name: "cpu runs out first",
			server: registry.Server{Architecture: "amd64", TotalCPU: 6, TotalMemoryMB: 100000, TotalDiskGB: 1000},
			tier:   "starter",
			want:   []string{"pro ok", "power: cpu need 6, have 4", "enterprise: cpu need 14, have 4"}},
		{name: "memory: an exact fit fits",
			server: registry.Server{Architecture: "amd64", TotalCPU: 100, TotalMemoryMB: 8192, TotalDiskGB: 1000},
			tier:   "starter",
			want:   []string{"pro ok", "power: memory need 12288, have 4096", "enterprise: memory need 28672, have 4096"}},
		{name: "disk",
			server: registry.Server{Architecture: "amd64", TotalCPU: 100, TotalMemoryMB: 100000, TotalDiskGB: 40},
			tier:   "starter",
			want:   []string{"pro: disk need 30, have 20", "power: disk need 80, have 20", "enterprise: disk need 180, have 20"}},
		{name: "downscaling always fits, on a full server",
			server: registry.Server{Architecture: "amd64", TotalCPU: 4, TotalMemoryMB: 8192, TotalDiskGB: 50},
			tier:   "pro",
			want:   []string{"starter ok", "power: cpu need 4, have 0", "enterprise: cpu need 12, have 0"}},
		{name: "x86_64 is amd64; the GPU tier of the server's type is listed, sorted by price",
			server: registry.Server{Architecture: "x86_64", TotalCPU: 100, TotalMemoryMB: 1 << 20, TotalDiskGB: 1000,
				GPUType: "NVIDIA RTX 4000 SFF Ada", GPUCount: 1},
			tier: "pro",
			want: []string{"starter ok", "power ok", "enterprise ok", "gpu_starter ok"}},
		{name: "arm server lists only arm tiers",
			server: registry.Server{Architecture: "aarch64", TotalCPU: 100, TotalMemoryMB: 1 << 20, TotalDiskGB: 1000},
			tier:   "starter_arm",
			want:   []string{"pro_arm ok", "power_arm ok", "enterprise_arm ok"}},
		{name: "unknown tier counts from the fallback",
			server: registry.Server{Architecture: "amd64", TotalCPU: 4, TotalMemoryMB: 100000, TotalDiskGB: 1000},
			tier:   "mystery",
			want:   []string{"starter ok", "pro ok", "power: cpu need 6, have 2", "enterprise: cpu need 14, have 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 1)
			s := tt.server
			s.ID, s.Hostname, s.AgentPort, s.Region = "srv", "srv", 1, "local"
			if _, err := r.db.CreateServer(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			ws := place(t, r, "srv", "w1", tt.tier)
			got, err := r.orch.ScaleOptions(context.Background(), ws)
			if err != nil {
				t.Fatalf("ScaleOptions: %v", err)
			}
			if got.Problem != orchestrator.ScaleOK || got.ServerID != "srv" || got.CurrentTier != tt.tier {
				t.Errorf("got problem %v, server %q, tier %q; want none, srv, %s", got.Problem, got.ServerID, got.CurrentTier, tt.tier)
			}
			if d := cmp.Diff(tt.want, optionSummary(got.AvailableTiers)); d != "" {
				t.Errorf("options (-want +got):\n%s", d)
			}
		})
	}
}

func TestScaleOptionsInfoAndErrors(t *testing.T) {
	r := newRig(t, 3, "ws-1")
	ctx := context.Background()
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.orch.ScaleOptions(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	wantCurrent := &tiers.Spec{Tier: "starter", DisplayName: "Starter", Architecture: "amd64", VCPU: 2, MemoryMB: 4096,
		StorageGB: 20, BandwidthMbps: 100, HourlyRateCents: 3, SortOrder: 4}
	if d := cmp.Diff(wantCurrent, got.Current); d != "" {
		t.Errorf("current tier (-want +got):\n%s", d)
	}
	wantFirst := orchestrator.TierOption{Spec: tiers.Spec{Tier: "pro", DisplayName: "Pro", Architecture: "amd64", VCPU: 4,
		MemoryMB: 8192, StorageGB: 50, BandwidthMbps: 250, HourlyRateCents: 6, RequiresSubscription: "pro", SortOrder: 5}}
	if len(got.AvailableTiers) == 0 {
		t.Fatal("no options, want pro first")
	}
	if d := cmp.Diff(wantFirst, got.AvailableTiers[0]); d != "" {
		t.Errorf("first option (-want +got):\n%s", d)
	}

	tests := []struct {
		name        string
		server      string
		wantProblem orchestrator.ScaleProblem
	}{
		{"no server", "", orchestrator.ScaleNoServer},
		{"unknown server", "gone", orchestrator.ScaleServerUnusable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ws
			w.ServerID = tt.server
			got, err := r.orch.ScaleOptions(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			want := orchestrator.ScaleOptions{CurrentTier: "starter", ServerID: tt.server, AvailableTiers: []orchestrator.TierOption{},
				Problem: tt.wantProblem}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("options (-want +got):\n%s", d)
			}
		})
	}
	t.Run("unhealthy server", func(t *testing.T) {
		r.health.set("ws-1", fleet.HealthUnhealthy)
		got, err := r.orch.ScaleOptions(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		if got.Problem != orchestrator.ScaleServerUnusable || len(got.AvailableTiers) != 0 || got.Current != nil {
			t.Errorf("got %+v, want ScaleServerUnusable with no tier info", got)
		}
	})
}

func TestScale(t *testing.T) {
	starterRes := fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}
	proRes := fleet.Resources{CPU: 4, MemoryMB: 8192, DiskGB: 50, BandwidthMbps: 250}
	pro, _ := tiers.Builtin().Lookup("pro")
	tests := []struct {
		name      string
		slots     int
		tier      string
		prepare   func(r *rig, ws *registry.Workspace)
		want      orchestrator.ScaleResult
		wantErr   error // matchError
		alsoErr   error // a second error err must also be (errors.Is)
		wantTier  string
		wantRes   fleet.Resources
		wantLimit wire.Resources // the container's limits on the agent
		wantEvent bool           // a workspace.scaled event
	}{
		{name: "success updates the container and the reservation", slots: 3, tier: "pro",
			want:     orchestrator.ScaleResult{Outcome: orchestrator.Scaled, NewTier: "pro", OldTier: "starter", ServerID: "ws-1", New: &pro},
			wantTier: "pro", wantRes: proRes, wantLimit: wire.Resources{CPU: 4, MemoryMB: 8192}, wantEvent: true},
		{name: "unknown tier scales to the fallback, cost unknown", slots: 3, tier: "mystery",
			want:     orchestrator.ScaleResult{Outcome: orchestrator.Scaled, NewTier: "mystery", OldTier: "starter", ServerID: "ws-1"},
			wantTier: "mystery", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}, wantEvent: true},
		{name: "same tier", slots: 3, tier: "starter",
			want:     orchestrator.ScaleResult{Outcome: orchestrator.AlreadyOnTier, NewTier: "starter", OldTier: "starter", ServerID: "ws-1"},
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "insufficient capacity", slots: 1, tier: "pro",
			want:     orchestrator.ScaleResult{Outcome: orchestrator.NoRoom, NewTier: "pro", OldTier: "starter", ServerID: "ws-1"},
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "agent update failure rolls the reservation back", slots: 3, tier: "pro",
			prepare: func(r *rig, _ *registry.Workspace) { r.agents["ws-1"].FailUpdate(wire.CodeDocker) },
			wantErr: orchestrator.ErrScaleFailed, alsoErr: agentclient.ErrDocker,
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "no server", slots: 3, tier: "pro",
			prepare:  func(r *rig, ws *registry.Workspace) { r.detachServer(ws.ID) },
			wantErr:  orchestrator.ErrNoServerAssignment,
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "unhealthy server", slots: 3, tier: "pro",
			prepare:  func(r *rig, _ *registry.Workspace) { r.health.set("ws-1", fleet.HealthUnhealthy) },
			wantErr:  &orchestrator.ServerUnusableError{ServerID: "ws-1"},
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "no container", slots: 3, tier: "pro",
			prepare: func(r *rig, ws *registry.Workspace) {
				if _, err := r.db.UpdateWorkspace(context.Background(), ws.ID, func(w *registry.Workspace) error { w.ContainerID = ""; return nil }); err != nil {
					r.t.Fatal(err)
				}
			},
			wantErr:  orchestrator.ErrScaleNoContainer,
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.slots, "ws-1")
			ctx := context.Background()
			ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(r, &ws)
			}
			got, err := r.orch.Scale(ctx, ws, tt.tier)
			switch {
			case tt.wantErr != nil && !matchError(err, tt.wantErr):
				t.Errorf("Scale: got error %v, want %v", err, tt.wantErr)
			case tt.alsoErr != nil && !errors.Is(err, tt.alsoErr):
				t.Errorf("Scale: got error %v, want it to be %v as well", err, tt.alsoErr)
			case tt.wantErr == nil && err != nil:
				t.Errorf("Scale: got error %v, want none", err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			stored, err := r.db.GetWorkspace(ctx, "w1")
			if err != nil {
				t.Fatal(err)
			}
			if stored.Tier != tt.wantTier || stored.Reservation != tt.wantRes {
				t.Errorf("stored: got tier %q, reservation %+v; want %q, %+v", stored.Tier, stored.Reservation, tt.wantTier, tt.wantRes)
			}
			if stored.Epoch != ws.Epoch {
				t.Errorf("epoch: got %d, want 1 (a resize keeps the placement)", stored.Epoch)
			}
			cs := r.agents["ws-1"].Containers()
			if len(cs) != 1 || cs[0].Resources != tt.wantLimit {
				t.Errorf("containers on agent: got %+v, want one with limits %+v", cs, tt.wantLimit)
			}
			if got := slices.Contains(r.events("w1"), "workspace.scaled@ws-1"); got != tt.wantEvent {
				t.Errorf("workspace.scaled event: got %v, want %v", got, tt.wantEvent)
			}
		})
	}
}

// Placement counts overcommitted vCPUs, but Docker refuses a CPU limit
// above the host's cores: the container gets all the cores, the
// reservation the tier's vCPUs.
func TestScaleCapsCPULimitAtRealCores(t *testing.T) {
	r := newRig(t, 3, "ws-1")
	ctx := context.Background()
	orch := r.with(func(c *orchestrator.Config, d *orchestrator.Deps) {
		c.CPUOvercommit = 8
		d.Members = members{servers: []string{"ws-1"}, cores: 2}
	})
	ws, err := orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := orch.Scale(ctx, ws, "pro")
	if err != nil || res.Outcome != orchestrator.Scaled {
		t.Fatalf("Scale: got %+v, %v; want scaled", res, err)
	}
	if cs := r.agents["ws-1"].Containers(); len(cs) != 1 || cs[0].Resources != (wire.Resources{CPU: 2, MemoryMB: 8192}) {
		t.Errorf("containers: got %+v, want one limited to 2 CPU (the real cores) and 8192 MB", cs)
	}
	stored, err := r.db.GetWorkspace(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Reservation.CPU != 4 {
		t.Errorf("reserved CPU: got %v, want the tier's 4", stored.Reservation.CPU)
	}
}

// Two scales of one workspace at once are serialised: the second sees the
// first's tier, so the container, the reservation and the tier agree.
func TestConcurrentScalesAgree(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 8, "ws-1")
	ws, err := r.orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, tier := range []string{"pro", "power"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := r.orch.Scale(ctx, ws, tier); err != nil || res.Outcome != orchestrator.Scaled {
				t.Errorf("scale to %s: got %+v, %v; want scaled", tier, res, err)
			}
		}()
	}
	wg.Wait()
	got, err := r.orch.Get(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"pro": 8192, "power": 16384}[got.Tier]
	if want == 0 || got.Reservation.MemoryMB != want {
		t.Errorf("tier %s with a %d MB reservation, want %d", got.Tier, got.Reservation.MemoryMB, want)
	}
	for _, c := range r.agents["ws-1"].Containers() {
		if c.Resources.MemoryMB != want {
			t.Errorf("container limit %d MB, tier %s wants %d", c.Resources.MemoryMB, got.Tier, want)
		}
	}
}
