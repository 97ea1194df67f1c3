package computeapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/tiers"
)

// tierInfo is a tier of the scale-options answer (§3.16).
type tierInfo struct {
	Tier            string  `json:"tier"`
	DisplayName     string  `json:"display_name"`
	CPU             float64 `json:"cpu"`
	MemoryMB        int64   `json:"memory_mb"`
	StorageGB       int64   `json:"storage_gb"`
	BandwidthMbps   int64   `json:"bandwidth_mbps"`
	HourlyRateCents int64   `json:"hourly_rate_cents"`
	IsGPU           bool    `json:"is_gpu"`
	GPUType         *string `json:"gpu_type"`
}

// tierOption is an item of available_tiers (§3.16).
type tierOption struct {
	Tier            string  `json:"tier"`
	DisplayName     string  `json:"display_name"`
	CanScale        bool    `json:"can_scale"`
	Reason          *string `json:"reason"`
	CPU             float64 `json:"cpu"`
	MemoryMB        int64   `json:"memory_mb"`
	StorageGB       int64   `json:"storage_gb"`
	BandwidthMbps   int64   `json:"bandwidth_mbps"`
	HourlyRateCents int64   `json:"hourly_rate_cents"`
	IsGPU           bool    `json:"is_gpu"`
	GPUType         *string `json:"gpu_type"`
}

// scaleOptionsBody is the normal answer of §3.16.
type scaleOptionsBody struct {
	CurrentTier     string       `json:"current_tier"`
	CurrentTierInfo *tierInfo    `json:"current_tier_info"`
	ServerID        *string      `json:"server_id"`
	AvailableTiers  []tierOption `json:"available_tiers"`
}

// scaleOptionsError is the answer of §3.16 when the server is missing:
// no current_tier_info key.
type scaleOptionsError struct {
	CurrentTier    string       `json:"current_tier"`
	ServerID       *string      `json:"server_id"`
	AvailableTiers []tierOption `json:"available_tiers"`
	Error          string       `json:"error"`
}

// scaleBody is WorkspaceScaleResponse (§3.17) plus old_tier (§14 row 24).
type scaleBody struct {
	Success              bool    `json:"success"`
	Message              string  `json:"message"`
	NewTier              *string `json:"new_tier"`
	EstimatedCostPerHour *string `json:"estimated_cost_per_hour"`
	RequiresRestart      bool    `json:"requires_restart"`
	OldTier              *string `json:"old_tier"`
}

func tierInfoOf(t tiers.Spec) tierInfo {
	return tierInfo{Tier: t.Tier, DisplayName: t.DisplayName, CPU: t.VCPU, MemoryMB: t.MemoryMB,
		StorageGB: t.StorageGB, BandwidthMbps: t.BandwidthMbps, HourlyRateCents: t.HourlyRateCents,
		IsGPU: t.IsGPU, GPUType: nullable(t.GPUType)}
}

// shortfallReason is the §3.16 reason of a tier that does not fit.
func shortfallReason(s *fleet.Shortfall) *string {
	if s == nil {
		return nil
	}
	var r string
	switch s.Resource {
	case fleet.CPU:
		r = fmt.Sprintf("Insufficient CPU (need %.1f, have %.1f)", s.Need, s.Have)
	case fleet.Memory:
		r = fmt.Sprintf("Insufficient memory (need %.0fMB, have %.0fMB)", s.Need, s.Have)
	case fleet.Disk:
		r = fmt.Sprintf("Insufficient disk (need %.0fGB, have %.0fGB)", s.Need, s.Have)
	default:
		r = fmt.Sprintf("Insufficient %s (need %.0f, have %.0f)", s.Resource, s.Need, s.Have)
	}
	return &r
}

func scaleOptionsOf(o orchestrator.ScaleOptions) any {
	switch o.Problem {
	case orchestrator.ScaleNoServer, orchestrator.ScaleServerUnusable:
		msg := detailNoServerAssign
		if o.Problem == orchestrator.ScaleServerUnusable {
			msg = detailServerUnusable
		}
		return scaleOptionsError{CurrentTier: o.CurrentTier, ServerID: nullable(o.ServerID),
			AvailableTiers: []tierOption{}, Error: msg}
	}
	body := scaleOptionsBody{CurrentTier: o.CurrentTier, ServerID: nullable(o.ServerID),
		AvailableTiers: make([]tierOption, 0, len(o.AvailableTiers))}
	if o.Current != nil {
		info := tierInfoOf(*o.Current)
		body.CurrentTierInfo = &info
	}
	for _, t := range o.AvailableTiers {
		i := tierInfoOf(t.Spec)
		body.AvailableTiers = append(body.AvailableTiers, tierOption{Tier: i.Tier, DisplayName: i.DisplayName,
			CanScale: t.Shortfall == nil, Reason: shortfallReason(t.Shortfall), CPU: i.CPU, MemoryMB: i.MemoryMB,
			StorageGB: i.StorageGB, BandwidthMbps: i.BandwidthMbps, HourlyRateCents: i.HourlyRateCents, IsGPU: i.IsGPU,
			GPUType: i.GPUType})
	}
	return body
}

// scaleBodyOf words a scale's outcome (§3.17).
func scaleBodyOf(r orchestrator.ScaleResult) scaleBody {
	b := scaleBody{NewTier: nullable(r.NewTier), OldTier: nullable(r.OldTier), RequiresRestart: true}
	switch r.Outcome {
	case orchestrator.Scaled:
		b.Success, b.RequiresRestart = true, false
		b.Message = fmt.Sprintf("Successfully scaled workspace to %s tier", r.NewTier)
		if r.New != nil {
			b.EstimatedCostPerHour = nullable(strconv.FormatFloat(float64(r.New.HourlyRateCents)/100, 'f', -1, 64))
		}
	case orchestrator.AlreadyOnTier:
		b.Message = fmt.Sprintf("Workspace is already on %s tier", r.NewTier)
	case orchestrator.NoRoom:
		b.Message = fmt.Sprintf("Insufficient capacity on server %s for %s tier", r.ServerID, r.NewTier)
	}
	return b
}

// scaleOptions is GET …/scale-options (§3.16).
func (a *API) scaleOptions(c echo.Context) error {
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	opts, err := a.d.Workspaces.ScaleOptions(c.Request().Context(), ws)
	if err != nil {
		return a.fail(opLookup, err)
	}
	return writeJSON(c, http.StatusOK, scaleOptionsOf(opts))
}

// decodeScale validates WorkspaceScaleRequest (§3.17): new_tier required.
func decodeScale(b requestBody) (string, error) {
	var v validator
	tier := v.body(b).requiredString("new_tier")
	return tier, v.err()
}

// scale is POST …/scale (§3.17); a failed scale is a 500 (§14 row 14).
func (a *API) scale(c echo.Context) error {
	tier, err := decodeScale(bodyOf(c))
	if err != nil {
		return err
	}
	ws, err := a.owned(c, false)
	if err != nil {
		return err
	}
	res, err := a.d.Workspaces.Scale(c.Request().Context(), ws, tier)
	if err != nil {
		return a.fail(opScale, err)
	}
	return writeJSON(c, http.StatusOK, scaleBodyOf(res))
}
