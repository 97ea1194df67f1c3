package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/gossip"
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
	if err := r.db.ReserveAndInsert(ctx, ws, registry.Limits{}); err != nil {
		t.Fatal(err)
	}
	ws, err := r.db.GetWorkspace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// optionSummary is each option as "tier ok" or "tier: reason", in order.
func optionSummary(opts []orchestrator.TierOption) []string {
	out := []string{}
	for _, o := range opts {
		switch {
		case o.CanScale && o.Reason == "":
			out = append(out, o.Tier+" ok")
		case o.CanScale:
			out = append(out, o.Tier+" ok with reason "+o.Reason)
		default:
			out = append(out, o.Tier+": "+o.Reason)
		}
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
			want:   []string{"pro ok", "power: Insufficient CPU (need 6.0, have 4.0)", "enterprise: Insufficient CPU (need 14.0, have 4.0)"}},
		{name: "memory: an exact fit fits",
			server: registry.Server{Architecture: "amd64", TotalCPU: 100, TotalMemoryMB: 8192, TotalDiskGB: 1000},
			tier:   "starter",
			want:   []string{"pro ok", "power: Insufficient memory (need 12288MB, have 4096MB)", "enterprise: Insufficient memory (need 28672MB, have 4096MB)"}},
		{name: "disk",
			server: registry.Server{Architecture: "amd64", TotalCPU: 100, TotalMemoryMB: 100000, TotalDiskGB: 40},
			tier:   "starter",
			want:   []string{"pro: Insufficient disk (need 30GB, have 20GB)", "power: Insufficient disk (need 80GB, have 20GB)", "enterprise: Insufficient disk (need 180GB, have 20GB)"}},
		{name: "downscaling always fits, on a full server",
			server: registry.Server{Architecture: "amd64", TotalCPU: 4, TotalMemoryMB: 8192, TotalDiskGB: 50},
			tier:   "pro",
			want:   []string{"starter ok", "power: Insufficient CPU (need 4.0, have 0.0)", "enterprise: Insufficient CPU (need 12.0, have 0.0)"}},
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
			want:   []string{"starter ok", "pro ok", "power: Insufficient CPU (need 6.0, have 2.0)", "enterprise: Insufficient CPU (need 14.0, have 2.0)"}},
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
			if got.Error != "" || got.ServerID != "srv" || got.CurrentTier != tt.tier {
				t.Errorf("got error %q, server %q, tier %q; want no error, srv, %s", got.Error, got.ServerID, got.CurrentTier, tt.tier)
			}
			if diff := cmp.Diff(tt.want, optionSummary(got.AvailableTiers)); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
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
	wantInfo := &orchestrator.TierInfo{Tier: "starter", DisplayName: "Starter", CPU: 2, MemoryMB: 4096, StorageGB: 20,
		BandwidthMbps: 100, HourlyRateCents: 3}
	if diff := cmp.Diff(wantInfo, got.CurrentTierInfo); diff != "" {
		t.Errorf("current tier info (-want +got):\n%s", diff)
	}
	if len(got.AvailableTiers) == 0 || got.AvailableTiers[0].TierInfo != (orchestrator.TierInfo{Tier: "pro", DisplayName: "Pro",
		CPU: 4, MemoryMB: 8192, StorageGB: 50, BandwidthMbps: 250, HourlyRateCents: 6}) {
		t.Errorf("first option: got %+v, want pro's spec", got.AvailableTiers)
	}

	tests := []struct {
		name      string
		server    string
		wantError string
	}{
		{"no server", "", "Workspace has no server assignment"},
		{"unknown server", "gone", "Server not found or unhealthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ws
			w.ServerID = tt.server
			got, err := r.orch.ScaleOptions(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			want := orchestrator.ScaleOptions{CurrentTier: "starter", ServerID: tt.server, AvailableTiers: []orchestrator.TierOption{}, Error: tt.wantError}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScale(t *testing.T) {
	starterRes := fleet.Resources{CPU: 2, MemoryMB: 4096, DiskGB: 20, BandwidthMbps: 100}
	proRes := fleet.Resources{CPU: 4, MemoryMB: 8192, DiskGB: 50, BandwidthMbps: 250}
	tests := []struct {
		name      string
		slots     int
		tier      string
		prepare   func(r *rig, ws *registry.Workspace)
		want      orchestrator.ScaleResult
		wantErr   error
		wantMsg   string // the error's text, when wantErr is set
		wantTier  string
		wantRes   fleet.Resources
		wantLimit wire.Resources // the container's limits on the agent
	}{
		{name: "success updates the container and the reservation", slots: 3, tier: "pro",
			want: orchestrator.ScaleResult{Success: true, Message: "Successfully scaled workspace to pro tier",
				NewTier: "pro", OldTier: "starter", EstimatedCostPerHour: "0.06"},
			wantTier: "pro", wantRes: proRes, wantLimit: wire.Resources{CPU: 4, MemoryMB: 8192}},
		{name: "unknown tier scales to the fallback, cost unknown", slots: 3, tier: "mystery",
			want: orchestrator.ScaleResult{Success: true, Message: "Successfully scaled workspace to mystery tier",
				NewTier: "mystery", OldTier: "starter"},
			wantTier: "mystery", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "same tier", slots: 3, tier: "starter",
			want: orchestrator.ScaleResult{Message: "Workspace is already on starter tier", NewTier: "starter",
				OldTier: "starter", RequiresRestart: true},
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "insufficient capacity", slots: 1, tier: "pro",
			want: orchestrator.ScaleResult{Message: "Insufficient capacity on server ws-1 for pro tier", NewTier: "pro",
				OldTier: "starter", RequiresRestart: true},
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "agent update failure rolls the reservation back", slots: 3, tier: "pro",
			prepare:  func(r *rig, _ *registry.Workspace) { r.agents["ws-1"].FailUpdate.Store(wire.CodeDocker) },
			wantErr:  orchestrator.ErrScaleFailed,
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "no server", slots: 3, tier: "pro",
			prepare: func(_ *rig, ws *registry.Workspace) { ws.ServerID = "" },
			wantErr: orchestrator.ErrNoServerAssignment, wantMsg: "Workspace has no server assignment",
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "unknown server", slots: 3, tier: "pro",
			prepare: func(_ *rig, ws *registry.Workspace) { ws.ServerID = "gone" },
			wantErr: orchestrator.ErrServerUnhealthy, wantMsg: "Server gone not found or unhealthy",
			wantTier: "starter", wantRes: starterRes, wantLimit: wire.Resources{CPU: 2, MemoryMB: 4096}},
		{name: "no container", slots: 3, tier: "pro",
			prepare: func(_ *rig, ws *registry.Workspace) { ws.ContainerID = "" },
			wantErr: orchestrator.ErrScaleNoContainer, wantMsg: "Failed to scale workspace: Workspace has no container",
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
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Scale: got error %v, want %v", err, tt.wantErr)
			case tt.wantErr != nil && tt.wantMsg != "" && fmt.Sprint(err) != tt.wantMsg:
				t.Errorf("Scale: got error text %q, want %q", err, tt.wantMsg)
			case tt.wantErr == nil && err != nil:
				t.Errorf("Scale: got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			stored, err := r.db.GetWorkspace(ctx, "w1")
			if err != nil {
				t.Fatal(err)
			}
			if stored.Tier != tt.wantTier || stored.Reservation != tt.wantRes {
				t.Errorf("stored: got tier %q, reservation %+v; want %q, %+v", stored.Tier, stored.Reservation, tt.wantTier, tt.wantRes)
			}
			if stored.Epoch != 1 {
				t.Errorf("epoch: got %d, want 1 (a resize keeps the placement)", stored.Epoch)
			}
			cs := r.agents["ws-1"].Containers()
			if len(cs) != 1 || cs[0].Resources != tt.wantLimit {
				t.Errorf("containers on agent: got %+v, want one with limits %+v", cs, tt.wantLimit)
			}
		})
	}
}

// members is a gossip view in which every server reports cores real cores.
type members struct {
	servers []string
	cores   int64
}

func (m members) Members() []gossip.Member {
	out := []gossip.Member{}
	for _, s := range m.servers {
		out = append(out, gossip.Member{Name: s, State: gossip.StateAlive, Meta: wire.NodeMeta{CPUMilli: m.cores * 1000}})
	}
	return out
}

// Placement counts overcommitted vCPUs, but Docker refuses a CPU limit
// above the host's cores: the container gets all the cores, the
// reservation the tier's vCPUs.
func TestScaleCapsCPULimitAtRealCores(t *testing.T) {
	r := newRig(t, 3, "ws-1")
	ctx := context.Background()
	orch := orchestrator.New(r.db, r.dialer, members{servers: []string{"ws-1"}, cores: 2}, allHealthy{}, tiers.Builtin(),
		orchestrator.Options{Strategy: placement.Spread, WorkspaceImage: "berth/workspace:dev", CPUOvercommit: 8}, hclog.NewNullLogger())
	ws, err := orch.Create(ctx, createReq("w1", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := orch.Scale(ctx, ws, "pro")
	if err != nil || !res.Success {
		t.Fatalf("Scale: got %+v, %v; want success", res, err)
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
			if _, err := r.orch.Scale(ctx, ws, tier); err != nil {
				t.Errorf("scale to %s: %v", tier, err)
			}
		}()
	}
	wg.Wait()
	got, _ := r.orch.Get(ctx, "w1")
	want := map[string]int64{"pro": 8192, "power": 16384}[got.Tier]
	if got.Reservation.MemoryMB != want {
		t.Errorf("tier %s with a %d MB reservation, want %d", got.Tier, got.Reservation.MemoryMB, want)
	}
	for _, c := range r.agents["ws-1"].Containers() {
		if c.Resources.MemoryMB != want {
			t.Errorf("container limit %d MB, tier %s wants %d", c.Resources.MemoryMB, got.Tier, want)
		}
	}
}
