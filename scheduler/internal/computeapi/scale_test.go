package computeapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/orchestrator"
)

func TestScaleOptions(t *testing.T) {
	starter := orchestrator.TierInfo{Tier: "starter", DisplayName: "Starter", CPU: 2, MemoryMB: 4096, StorageGB: 20,
		BandwidthMbps: 100, HourlyRateCents: 3}
	pro := orchestrator.TierInfo{Tier: "pro", DisplayName: "Pro", CPU: 4, MemoryMB: 8192, StorageGB: 50,
		BandwidthMbps: 250, HourlyRateCents: 6}
	gpu := orchestrator.TierInfo{Tier: "gpu_starter", DisplayName: "GPU Starter", CPU: 8, MemoryMB: 65536, StorageGB: 100,
		BandwidthMbps: 500, HourlyRateCents: 40, IsGPU: true, GPUType: "NVIDIA RTX 4000 SFF Ada"}
	tests := []struct {
		name     string
		options  orchestrator.ScaleOptions
		wantBody string
	}{
		{name: "normal",
			options: orchestrator.ScaleOptions{CurrentTier: "starter", CurrentTierInfo: &starter, ServerID: "srv-1",
				AvailableTiers: []orchestrator.TierOption{{TierInfo: pro, CanScale: true},
					{TierInfo: gpu, Reason: "Insufficient CPU (need 6.0, have 2.0)"}}},
			wantBody: `{"current_tier":"starter","current_tier_info":{"tier":"starter","display_name":"Starter","cpu":2,
				"memory_mb":4096,"storage_gb":20,"bandwidth_mbps":100,"hourly_rate_cents":3,"is_gpu":false,"gpu_type":null},
				"server_id":"srv-1","available_tiers":[
				{"tier":"pro","display_name":"Pro","can_scale":true,"reason":null,"cpu":4,"memory_mb":8192,"storage_gb":50,
				 "bandwidth_mbps":250,"hourly_rate_cents":6,"is_gpu":false,"gpu_type":null},
				{"tier":"gpu_starter","display_name":"GPU Starter","can_scale":false,"reason":"Insufficient CPU (need 6.0, have 2.0)",
				 "cpu":8,"memory_mb":65536,"storage_gb":100,"bandwidth_mbps":500,"hourly_rate_cents":40,"is_gpu":true,
				 "gpu_type":"NVIDIA RTX 4000 SFF Ada"}]}`},
		{name: "unknown current tier: null info, empty list",
			options:  orchestrator.ScaleOptions{CurrentTier: "weird", ServerID: "srv-1"},
			wantBody: `{"current_tier":"weird","current_tier_info":null,"server_id":"srv-1","available_tiers":[]}`},
		{name: "no server: no current_tier_info key",
			options:  orchestrator.ScaleOptions{CurrentTier: "starter", Error: "Workspace has no server assignment"},
			wantBody: `{"current_tier":"starter","server_id":null,"available_tiers":[],"error":"Workspace has no server assignment"}`},
		{name: "server unhealthy",
			options:  orchestrator.ScaleOptions{CurrentTier: "starter", ServerID: "srv-1", Error: "Server not found or unhealthy"},
			wantBody: `{"current_tier":"starter","server_id":"srv-1","available_tiers":[],"error":"Server not found or unhealthy"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.options = tt.options
			rec := req{method: "GET", path: "/workspaces/ws1/scale-options"}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, http.StatusOK, tt.wantBody)
		})
	}
}

func TestScaleOptionsOwnerCheck(t *testing.T) {
	tests := []struct {
		name       string
		req        req
		wantStatus int
		wantBody   string
	}{
		{"another user's workspace", req{method: "GET", path: "/workspaces/ws1/scale-options", header: map[string]string{headerUserID: "bob"}},
			http.StatusForbidden, detail("Not authorized to access this workspace")},
		{"unknown workspace", req{method: "GET", path: "/workspaces/nope/scale-options"}, http.StatusNotFound, detail("Workspace not found")},
		{"scale of another user's workspace", req{method: "POST", path: "/workspaces/ws1/scale", body: `{"new_tier":"pro"}`,
			header: map[string]string{headerUserID: "bob"}}, http.StatusForbidden, detail("Not authorized to access this workspace")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			checkJSON(t, tt.req.send(newTestEcho(f, testToken)), tt.wantStatus, tt.wantBody)
			if len(f.scales) != 0 {
				t.Errorf("scales: got %v, want none", f.scales)
			}
		})
	}
}

func TestScale(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		res        orchestrator.ScaleResult
		err        error
		wantStatus int
		wantBody   string
		wantScales []string
	}{
		{name: "success",
			body: `{"new_tier":"pro"}`,
			res: orchestrator.ScaleResult{Success: true, Message: "Successfully scaled workspace to pro tier", NewTier: "pro",
				OldTier: "starter", EstimatedCostPerHour: "0.06"},
			wantStatus: http.StatusOK,
			wantBody: `{"success":true,"message":"Successfully scaled workspace to pro tier","new_tier":"pro",
				"estimated_cost_per_hour":"0.06","requires_restart":false,"old_tier":"starter"}`,
			wantScales: []string{"pro"}},
		{name: "refused: cost is null",
			body: `{"new_tier":"starter"}`,
			res: orchestrator.ScaleResult{Message: "Workspace is already on starter tier", NewTier: "starter", OldTier: "starter",
				RequiresRestart: true},
			wantStatus: http.StatusOK,
			wantBody: `{"success":false,"message":"Workspace is already on starter tier","new_tier":"starter",
				"estimated_cost_per_hour":null,"requires_restart":true,"old_tier":"starter"}`,
			wantScales: []string{"starter"}},
		{name: "no container: the doubled prefix",
			body: `{"new_tier":"pro"}`, err: orchestrator.ErrScaleNoContainer,
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: Failed to scale workspace: Workspace has no container"),
			wantScales: []string{"pro"}},
		{name: "server unhealthy",
			body: `{"new_tier":"pro"}`, err: fmt.Errorf("Server srv-1 %w", orchestrator.ErrServerUnhealthy),
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: Server srv-1 not found or unhealthy"),
			wantScales: []string{"pro"}},
		{name: "update failed",
			body: `{"new_tier":"pro"}`, err: fmt.Errorf("%w: %v", orchestrator.ErrScaleFailed, errors.New("docker says no")),
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: container update failed: docker says no"),
			wantScales: []string{"pro"}},
		{name: "missing new_tier",
			body:       `{"tier":"pro"}`,
			wantStatus: http.StatusUnprocessableEntity,
			wantBody:   `{"detail":[{"type":"missing","loc":["body","new_tier"],"msg":"Field required","input":{"tier":"pro"}}]}`},
		{name: "new_tier not a string",
			body:       `{"new_tier":5}`,
			wantStatus: http.StatusUnprocessableEntity,
			wantBody:   `{"detail":[{"type":"string_type","loc":["body","new_tier"],"msg":"Input should be a valid string","input":5}]}`},
		{name: "no body",
			wantStatus: http.StatusUnprocessableEntity,
			wantBody:   `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(aliceWS())
			f.scaleRes, f.scaleErr = tt.res, tt.err
			rec := req{method: "POST", path: "/workspaces/ws1/scale", body: tt.body}.send(newTestEcho(f, testToken))
			checkJSON(t, rec, tt.wantStatus, tt.wantBody)
			if diff := cmp.Diff(tt.wantScales, f.scales); diff != "" {
				t.Errorf("tiers asked for (-want +got):\n%s", diff)
			}
		})
	}
}
