package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scaleOptions is the §3.16 answer as the e2e suite reads it.
type scaleOptions struct {
	CurrentTier     string         `json:"current_tier"`
	CurrentTierInfo map[string]any `json:"current_tier_info"`
	ServerID        string         `json:"server_id"`
	AvailableTiers  []struct {
		Tier            string  `json:"tier"`
		CanScale        bool    `json:"can_scale"`
		Reason          *string `json:"reason"`
		CPU             float64 `json:"cpu"`
		MemoryMB        int64   `json:"memory_mb"`
		HourlyRateCents int64   `json:"hourly_rate_cents"`
	} `json:"available_tiers"`
	Error *string `json:"error"`
}

// scaleResponse is WorkspaceScaleResponse plus old_tier (§3.17, §14 row 24).
type scaleResponse struct {
	Success              bool    `json:"success"`
	Message              string  `json:"message"`
	NewTier              *string `json:"new_tier"`
	EstimatedCostPerHour *string `json:"estimated_cost_per_hour"`
	RequiresRestart      bool    `json:"requires_restart"`
	OldTier              *string `json:"old_tier"`
}

// A starter workspace lists its amd64 siblings, scales live to pro (the
// container's memory limit in the host's own dockerd follows), and a second
// scale to pro is refused as a no-op.
func TestScale(t *testing.T) {
	needCluster(t)
	api := composeAPI().as("e2e-scale")
	id := uniqueID("scale")
	ws := api.mustCreate(t, "sess-scale", id, nil)

	r := api.do(t, http.MethodGet, "/workspaces/"+id+"/scale-options", nil)
	if r.status != http.StatusOK {
		t.Fatalf("scale-options: got %s, want 200", r)
	}
	var opts scaleOptions
	r.into(t, &opts)
	if opts.Error != nil || opts.CurrentTier != "starter" || opts.ServerID != ws.ServerID || opts.CurrentTierInfo["tier"] != "starter" {
		t.Fatalf("scale-options: got %s, want starter on %s without error", r.body, ws.ServerID)
	}
	var tiers []string
	canPro := false
	for i, o := range opts.AvailableTiers {
		tiers = append(tiers, o.Tier)
		if o.CanScale != (o.Reason == nil) {
			t.Errorf("%s: can_scale %v with reason %v: want a reason exactly when it cannot scale", o.Tier, o.CanScale, o.Reason)
		}
		if i > 0 && o.HourlyRateCents < opts.AvailableTiers[i-1].HourlyRateCents {
			t.Errorf("available tiers not sorted by price: %s", r.body)
		}
		if o.Tier == "pro" {
			canPro = o.CanScale
			if o.CPU != 4 || o.MemoryMB != 8192 {
				t.Errorf("pro: got %v CPU, %d MB; want 4, 8192", o.CPU, o.MemoryMB)
			}
		}
	}
	// The hosts are amd64 without GPUs: the amd64 siblings only, cheapest
	// first; no arm tier, no GPU tier, not starter itself.
	if diff := cmp.Diff([]string{"pro", "power", "enterprise"}, tiers); diff != "" {
		t.Errorf("available tiers (-want +got):\n%s\nbody: %s", diff, r.body)
	}
	if !canPro {
		t.Fatalf("pro cannot be scaled to on %s (%s): the cluster has no room for the test", ws.ServerID, r.body)
	}

	r = api.do(t, http.MethodPost, "/workspaces/"+id+"/scale", map[string]any{"new_tier": "pro"})
	if r.status != http.StatusOK {
		t.Fatalf("scale to pro: got %s, want 200", r)
	}
	var got scaleResponse
	r.into(t, &got)
	str := func(s string) *string { return &s }
	want := scaleResponse{Success: true, Message: "Successfully scaled workspace to pro tier", NewTier: str("pro"),
		EstimatedCostPerHour: str("0.06"), OldTier: str("starter")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scale to pro (-want +got):\n%s", diff)
	}
	if mem := innerDocker(t, ws.ServerID, "inspect", "--format", "{{.HostConfig.Memory}}", "workspace-"+id); mem != "8589934592" {
		t.Errorf("container memory limit after scale: got %s, want 8589934592 (8192 MiB)", mem)
	}
	// pro's 4 vCPUs, capped at the host's cores (Docker refuses more).
	ncpu, err := strconv.Atoi(innerDocker(t, ws.ServerID, "info", "--format", "{{.NCPU}}"))
	if err != nil {
		t.Fatal(err)
	}
	wantCPU := fmt.Sprint(int64(min(4, ncpu)) * 1e9)
	if cpu := innerDocker(t, ws.ServerID, "inspect", "--format", "{{.HostConfig.NanoCpus}}", "workspace-"+id); cpu != wantCPU {
		t.Errorf("container NanoCpus after scale: got %s, want %s (4 vCPUs on %d cores)", cpu, wantCPU, ncpu)
	}
	var after info
	api.get(t, id).into(t, &after)
	if after.Tier != "pro" || after.Status != "running" {
		t.Errorf("after scale: got tier %q, status %q; want pro, running", after.Tier, after.Status)
	}

	r = api.do(t, http.MethodPost, "/workspaces/"+id+"/scale", map[string]any{"new_tier": "pro"})
	if r.status != http.StatusOK {
		t.Fatalf("second scale to pro: got %s, want 200", r)
	}
	got = scaleResponse{}
	r.into(t, &got)
	want = scaleResponse{Message: "Workspace is already on pro tier", NewTier: str("pro"), RequiresRestart: true, OldTier: str("pro")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second scale to pro (-want +got):\n%s", diff)
	}
}
