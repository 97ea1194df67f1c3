package computeapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/orchestrator"
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

func scaleOptionsOf(o orchestrator.ScaleOptions) any {
	if o.Error != "" {
		return scaleOptionsError{CurrentTier: o.CurrentTier, ServerID: nullable(o.ServerID),
			AvailableTiers: []tierOption{}, Error: o.Error}
	}
	body := scaleOptionsBody{CurrentTier: o.CurrentTier, ServerID: nullable(o.ServerID),
		AvailableTiers: make([]tierOption, 0, len(o.AvailableTiers))}
	if t := o.CurrentTierInfo; t != nil {
		body.CurrentTierInfo = &tierInfo{Tier: t.Tier, DisplayName: t.DisplayName, CPU: t.CPU, MemoryMB: t.MemoryMB,
			StorageGB: t.StorageGB, BandwidthMbps: t.BandwidthMbps, HourlyRateCents: t.HourlyRateCents,
			IsGPU: t.IsGPU, GPUType: nullable(t.GPUType)}
	}
	for _, t := range o.AvailableTiers {
		body.AvailableTiers = append(body.AvailableTiers, tierOption{Tier: t.Tier, DisplayName: t.DisplayName,
			CanScale: t.CanScale, Reason: nullable(t.Reason), CPU: t.CPU, MemoryMB: t.MemoryMB, StorageGB: t.StorageGB,
			BandwidthMbps: t.BandwidthMbps, HourlyRateCents: t.HourlyRateCents, IsGPU: t.IsGPU, GPUType: nullable(t.GPUType)})
	}
	return body
}

func scaleBodyOf(r orchestrator.ScaleResult) scaleBody {
	return scaleBody{Success: r.Success, Message: r.Message, NewTier: nullable(r.NewTier),
		EstimatedCostPerHour: nullable(r.EstimatedCostPerHour), RequiresRestart: r.RequiresRestart,
		OldTier: nullable(r.OldTier)}
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
