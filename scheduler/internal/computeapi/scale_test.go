package computeapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/tiers"
)

func TestScaleOptions(t *testing.T) {
	starter := tiers.Spec{Tier: "starter", DisplayName: "Starter", VCPU: 2, MemoryMB: 4096, StorageGB: 20,
		BandwidthMbps: 100, HourlyRateCents: 3}
	pro := tiers.Spec{Tier: "pro", DisplayName: "Pro", VCPU: 4, MemoryMB: 8192, StorageGB: 50,
		BandwidthMbps: 250, HourlyRateCents: 6}
	power := tiers.Spec{Tier: "power", DisplayName: "Power", VCPU: 6, MemoryMB: 12288, StorageGB: 100,
		BandwidthMbps: 500, HourlyRateCents: 12}
	gpu := tiers.Spec{Tier: "gpu_starter", DisplayName: "GPU Starter", VCPU: 8, MemoryMB: 65536, StorageGB: 100,
		BandwidthMbps: 500, HourlyRateCents: 40, IsGPU: true, GPUType: "NVIDIA RTX 4000 SFF Ada"}
	tests := []struct {
		name     string
		options  orchestrator.ScaleOptions
		wantBody string
	}{
		{name: "normal",
			options: orchestrator.ScaleOptions{CurrentTier: "starter", Current: &starter, ServerID: "srv-1",
				AvailableTiers: []orchestrator.TierOption{{Spec: pro},
					{Spec: power, Shortfall: &fleet.Shortfall{Resource: fleet.Memory, Need: 12288, Have: 4096}},
					{Spec: gpu, Shortfall: &fleet.Shortfall{Resource: fleet.CPU, Need: 6, Have: 2}}}},
			wantBody: `{"current_tier":"starter","current_tier_info":{"tier":"starter","display_name":"Starter","cpu":2,
				"memory_mb":4096,"storage_gb":20,"bandwidth_mbps":100,"hourly_rate_cents":3,"is_gpu":false,"gpu_type":null},
				"server_id":"srv-1","available_tiers":[
				{"tier":"pro","display_name":"Pro","can_scale":true,"reason":null,"cpu":4,"memory_mb":8192,"storage_gb":50,
				 "bandwidth_mbps":250,"hourly_rate_cents":6,"is_gpu":false,"gpu_type":null},
				{"tier":"power","display_name":"Power","can_scale":false,"reason":"Insufficient memory (need 12288MB, have 4096MB)",
				 "cpu":6,"memory_mb":12288,"storage_gb":100,"bandwidth_mbps":500,"hourly_rate_cents":12,"is_gpu":false,"gpu_type":null},
				{"tier":"gpu_starter","display_name":"GPU Starter","can_scale":false,"reason":"Insufficient CPU (need 6.0, have 2.0)",
				 "cpu":8,"memory_mb":65536,"storage_gb":100,"bandwidth_mbps":500,"hourly_rate_cents":40,"is_gpu":true,
				 "gpu_type":"NVIDIA RTX 4000 SFF Ada"}]}`},
		{name: "unknown current tier: null info, empty list",
			options:  orchestrator.ScaleOptions{CurrentTier: "weird", ServerID: "srv-1"},
			wantBody: `{"current_tier":"weird","current_tier_info":null,"server_id":"srv-1","available_tiers":[]}`},
		{name: "no server: no current_tier_info key",
			options:  orchestrator.ScaleOptions{CurrentTier: "starter", Problem: orchestrator.ScaleNoServer},
			wantBody: `{"current_tier":"starter","server_id":null,"available_tiers":[],"error":"Workspace has no server assignment"}`},
		{name: "server unusable",
			options: orchestrator.ScaleOptions{CurrentTier: "starter", Current: &starter, ServerID: "srv-1",
				AvailableTiers: []orchestrator.TierOption{{Spec: pro}}, Problem: orchestrator.ScaleServerUnusable},
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

func TestShortfallReason(t *testing.T) {
	tests := []struct {
		name string
		in   *fleet.Shortfall
		want *string
	}{
		{"fits", nil, nil},
		{"cpu", &fleet.Shortfall{Resource: fleet.CPU, Need: 6, Have: 2}, ptr("Insufficient CPU (need 6.0, have 2.0)")},
		{"cpu fraction", &fleet.Shortfall{Resource: fleet.CPU, Need: 1.5, Have: 0.5}, ptr("Insufficient CPU (need 1.5, have 0.5)")},
		{"memory", &fleet.Shortfall{Resource: fleet.Memory, Need: 12288, Have: 4096}, ptr("Insufficient memory (need 12288MB, have 4096MB)")},
		{"disk", &fleet.Shortfall{Resource: fleet.Disk, Need: 100, Have: 30}, ptr("Insufficient disk (need 100GB, have 30GB)")},
		{"another resource", &fleet.Shortfall{Resource: fleet.GPU, Need: 1, Have: 0}, ptr("Insufficient gpus (need 1, have 0)")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, shortfallReason(tt.in)); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr(s string) *string { return &s }

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
		{name: "scaled",
			body: `{"new_tier":"pro"}`,
			res: orchestrator.ScaleResult{Outcome: orchestrator.Scaled, OldTier: "starter", NewTier: "pro", ServerID: "ws-1",
				New: &tiers.Spec{Tier: "pro", HourlyRateCents: 6}},
			wantStatus: http.StatusOK,
			wantBody: `{"success":true,"message":"Successfully scaled workspace to pro tier","new_tier":"pro",
				"estimated_cost_per_hour":"0.06","requires_restart":false,"old_tier":"starter"}`,
			wantScales: []string{"pro"}},
		{name: "scaled to a whole price",
			body: `{"new_tier":"power"}`,
			res: orchestrator.ScaleResult{Outcome: orchestrator.Scaled, OldTier: "starter", NewTier: "power", ServerID: "ws-1",
				New: &tiers.Spec{Tier: "power", HourlyRateCents: 100}},
			wantStatus: http.StatusOK,
			wantBody: `{"success":true,"message":"Successfully scaled workspace to power tier","new_tier":"power",
				"estimated_cost_per_hour":"1","requires_restart":false,"old_tier":"starter"}`,
			wantScales: []string{"power"}},
		{name: "scaled to an unknown tier: cost is null",
			body:       `{"new_tier":"weird"}`,
			res:        orchestrator.ScaleResult{Outcome: orchestrator.Scaled, OldTier: "starter", NewTier: "weird", ServerID: "ws-1"},
			wantStatus: http.StatusOK,
			wantBody: `{"success":true,"message":"Successfully scaled workspace to weird tier","new_tier":"weird",
				"estimated_cost_per_hour":null,"requires_restart":false,"old_tier":"starter"}`,
			wantScales: []string{"weird"}},
		{name: "already on the tier: cost is null",
			body: `{"new_tier":"pro"}`,
			res: orchestrator.ScaleResult{Outcome: orchestrator.AlreadyOnTier, OldTier: "pro", NewTier: "pro", ServerID: "ws-1",
				New: &tiers.Spec{Tier: "pro", HourlyRateCents: 6}},
			wantStatus: http.StatusOK,
			wantBody: `{"success":false,"message":"Workspace is already on pro tier","new_tier":"pro",
				"estimated_cost_per_hour":null,"requires_restart":true,"old_tier":"pro"}`,
			wantScales: []string{"pro"}},
		{name: "no room",
			body:       `{"new_tier":"pro"}`,
			res:        orchestrator.ScaleResult{Outcome: orchestrator.NoRoom, OldTier: "starter", NewTier: "pro", ServerID: "ws-1"},
			wantStatus: http.StatusOK,
			wantBody: `{"success":false,"message":"Insufficient capacity on server ws-1 for pro tier","new_tier":"pro",
				"estimated_cost_per_hour":null,"requires_restart":true,"old_tier":"starter"}`,
			wantScales: []string{"pro"}},
		{name: "no server assignment",
			body: `{"new_tier":"pro"}`, err: orchestrator.ErrNoServerAssignment,
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: Workspace has no server assignment"),
			wantScales: []string{"pro"}},
		{name: "no container: the doubled prefix",
			body: `{"new_tier":"pro"}`, err: orchestrator.ErrScaleNoContainer,
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: Failed to scale workspace: Workspace has no container"),
			wantScales: []string{"pro"}},
		{name: "server unusable",
			body: `{"new_tier":"pro"}`, err: fmt.Errorf("scale: %w", &orchestrator.ServerUnusableError{ServerID: "gone"}),
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: Server gone not found or unhealthy"),
			wantScales: []string{"pro"}},
		{name: "update failed",
			body: `{"new_tier":"pro"}`, err: fmt.Errorf("%w: %w", orchestrator.ErrScaleFailed, errors.New("docker says no")),
			wantStatus: http.StatusInternalServerError,
			wantBody:   detail("Failed to scale workspace: the container's limits could not be updated"),
			wantScales: []string{"pro"}},
		{name: "record gone",
			body: `{"new_tier":"pro"}`, err: orchestrator.ErrNotFound,
			wantStatus: http.StatusNotFound,
			wantBody:   detail("Workspace not found"),
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
