package admin

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/computeapi"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
)

// ExplainRequest is the body of POST /admin/placements/explain: the part of
// a workspace create config (contract §5.1) that placement reads. Other
// config fields are accepted and ignored, so a create body's config can be
// pasted as it is.
type ExplainRequest struct {
	Tier             string `json:"tier"`
	RegionPreference string `json:"region_preference"`
}

// PlacementRequest is what a workspace of the tier needs.
type PlacementRequest struct {
	Resources
	GPU          bool   `json:"gpu"`
	GPUType      string `json:"gpu_type"`
	GPUCount     int    `json:"gpu_count"`
	Architecture string `json:"architecture"`
	Region       string `json:"region"`
}

// Candidate is a server that could take the workspace.
type Candidate struct {
	ServerID string  `json:"server_id"`
	Hostname string  `json:"hostname"`
	Score    float64 `json:"score"`
	Rank     int     `json:"rank"` // 1 = chosen
}

// Verdict is what placement made of one server.
type Verdict struct {
	ServerID  string  `json:"server_id"`
	Eligible  bool    `json:"eligible"`
	Rank      int     `json:"rank"`      // 1 = chosen; 0 when rejected
	Score     float64 `json:"score"`     // 0 when rejected
	Rejection string  `json:"rejection"` // e.g. "insufficient memory", "state draining"; "" when eligible
	Reason    string  `json:"reason"`    // the full rejection, e.g. "insufficient memory: need 4096MB, have 1024MB"
}

// Explanation is a placement dry run: nothing is reserved.
type Explanation struct {
	Tier     string           `json:"tier"`
	Request  PlacementRequest `json:"request"`
	Strategy string           `json:"strategy"`
	Chosen   *Candidate       `json:"chosen"`  // null when nothing fits
	Reason   string           `json:"reason"`  // why the chosen server, e.g. "Selected server with lowest utilization"
	Summary  string           `json:"summary"` // the rejections in one line
	Error    string           `json:"error"`   // why nothing fits, as a create would answer; "" when placed
	Servers  []Verdict        `json:"servers"` // every server, in registration order
}

func (a *API) explain(c echo.Context) error {
	var req ExplainRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	cfg := orchestrator.WorkspaceConfig{Tier: req.Tier, Settings: registry.Settings{RegionPreference: req.RegionPreference}}
	preq, spec := a.d.Fleet.Request(cfg)
	out := Explanation{
		Tier: spec.Tier,
		Request: PlacementRequest{Resources: resourcesOf(preq.Resources), GPU: preq.GPU, GPUType: preq.GPUType,
			GPUCount: preq.GPUCount, Architecture: preq.Architecture, Region: preq.Region},
		Servers: []Verdict{},
	}
	dec, err := a.d.Fleet.Explain(c.Request().Context(), cfg)
	switch {
	case errors.Is(err, orchestrator.ErrNoServers):
		out.Error, out.Summary = computeapi.PlacementDetail(err), "no servers"
		out.Strategy = string(placement.ParseStrategy(string(preq.Strategy)))
		return c.JSON(http.StatusOK, out)
	case err != nil && !isPlacementFailure(err):
		return err
	case err != nil:
		out.Error = computeapi.PlacementDetail(err)
	}
	out.Strategy, out.Reason, out.Summary = string(dec.Strategy), dec.Reason, dec.Summary()
	rank := map[string]int{}
	for i, cand := range dec.Candidates {
		rank[cand.NodeID] = i + 1
	}
	if len(dec.Candidates) > 0 {
		ch := dec.Chosen
		out.Chosen = &Candidate{ServerID: ch.NodeID, Hostname: ch.Hostname, Score: ch.Score, Rank: 1}
	}
	for _, e := range dec.Explanations {
		out.Servers = append(out.Servers, Verdict{ServerID: e.NodeID, Eligible: !e.Rejected(), Rank: rank[e.NodeID],
			Score: e.Score, Rejection: e.Kind, Reason: e.Reason})
	}
	return c.JSON(http.StatusOK, out)
}

// isPlacementFailure reports whether err is placement's "nothing fits"
// answer, which a dry run shows rather than fails with.
func isPlacementFailure(err error) bool {
	for _, e := range []error{placement.ErrNoServers, placement.ErrNoHealthyServers, placement.ErrNoCapacity,
		placement.ErrNoRegionCapacity} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
