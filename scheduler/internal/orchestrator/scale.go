package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// TierInfo is a tier as scale-options shows it (contract §3.16).
type TierInfo struct {
	Tier            string
	DisplayName     string
	CPU             float64
	MemoryMB        int64
	StorageGB       int64
	BandwidthMbps   int64
	HourlyRateCents int64
	IsGPU           bool
	GPUType         string // "" = none
}

// TierOption is a tier a workspace could move to, and whether its server
// has the room for it.
type TierOption struct {
	TierInfo
	CanScale bool
	Reason   string // "" when CanScale; else the first resource that does not fit
}

// ScaleOptions answers GET …/scale-options (§3.16). When Error is set the
// answer has no tier info and no options.
type ScaleOptions struct {
	CurrentTier     string
	CurrentTierInfo *TierInfo // nil: the current tier is unknown
	ServerID        string    // "" = none
	AvailableTiers  []TierOption
	Error           string
}

// ScaleResult answers POST …/scale (§3.17, plus old_tier per §14 row 24).
type ScaleResult struct {
	Success              bool
	Message              string
	NewTier              string
	OldTier              string
	EstimatedCostPerHour string // dollars as a decimal string; "" = unknown
	RequiresRestart      bool
}

// Scale-options error texts (§3.16).
const (
	optNoServer      = "Workspace has no server assignment"
	optServerUnknown = "Server not found or unhealthy"
)

// ScaleOptions lists the tiers the workspace can move to on its server.
func (o *Orchestrator) ScaleOptions(ctx context.Context, ws registry.Workspace) (ScaleOptions, error) {
	out := ScaleOptions{CurrentTier: ws.Tier, ServerID: ws.ServerID, AvailableTiers: []TierOption{}}
	if ws.ServerID == "" {
		out.Error = optNoServer
		return out, nil
	}
	node, err := o.scaleNode(ctx, ws.ServerID)
	if errors.Is(err, ErrServerUnhealthy) {
		out.Error = optServerUnknown
		return out, nil
	}
	if err != nil {
		return ScaleOptions{}, err
	}
	current, known := o.tiers.Lookup(ws.Tier)
	if known {
		info := tierInfo(current)
		out.CurrentTierInfo = &info
	}
	from := o.tiers.Resolve(ws.Tier)
	avail := node.Effective().Available
	arch := wire.NormalizeArch(node.Architecture)
	nodeGPU := node.GPUCount > 0 || node.GPUType != ""
	for _, spec := range o.tiers.All() { // every built-in tier is available
		switch {
		case spec.Tier == ws.Tier,
			wire.NormalizeArch(spec.Architecture) != arch,
			needsGPU(spec) && !nodeGPU,
			spec.GPUType != "" && node.GPUType != "" && spec.GPUType != node.GPUType:
			continue
		}
		reason := fits(from, spec, avail)
		out.AvailableTiers = append(out.AvailableTiers, TierOption{TierInfo: tierInfo(spec), CanScale: reason == "", Reason: reason})
	}
	slices.SortStableFunc(out.AvailableTiers, func(a, b TierOption) int {
		return int(a.HourlyRateCents - b.HourlyRateCents)
	})
	return out, nil
}

// Scale moves a workspace to another tier on its server, live: the
// reservation is resized, then the container's CPU and memory limits are
// updated, then the tier is recorded. A failed container update undoes the
// resize and is an error (§14 row 14), not a success.
func (o *Orchestrator) Scale(ctx context.Context, ws registry.Workspace, newTier string) (ScaleResult, error) {
	defer o.lockWorkspace(ws.ID)()
	if now, err := o.db.GetWorkspace(ctx, ws.ID); err == nil {
		ws.Tier, ws.Reservation = now.Tier, now.Reservation // what an earlier scale left
	} else if errors.Is(err, registry.ErrNotFound) {
		return ScaleResult{}, ErrNotFound
	}
	refused := func(msg string) ScaleResult {
		return ScaleResult{Message: msg, NewTier: newTier, OldTier: ws.Tier, RequiresRestart: true}
	}
	if ws.Tier == newTier {
		return refused(fmt.Sprintf("Workspace is already on %s tier", newTier)), nil
	}
	if ws.ServerID == "" {
		return ScaleResult{}, ErrNoServerAssignment
	}
	node, err := o.scaleNode(ctx, ws.ServerID)
	if err != nil {
		return ScaleResult{}, err
	}
	spec := o.tiers.Resolve(newTier)
	noRoom := refused(fmt.Sprintf("Insufficient capacity on server %s for %s tier", ws.ServerID, newTier))
	if fits(o.tiers.Resolve(ws.Tier), spec, node.Effective().Available) != "" {
		return noRoom, nil
	}
	if ws.ContainerID == "" {
		return ScaleResult{}, ErrScaleNoContainer
	}
	client, actx, err := o.client(ctx, ws)
	if err != nil {
		return ScaleResult{}, err
	}
	old := ws.Reservation
	if _, err := o.db.ResizeWorkspace(ctx, ws.ID, reservation(spec), limits(node)); errors.Is(err, registry.ErrInsufficientCapacity) {
		return noRoom, nil
	} else if err != nil {
		return ScaleResult{}, err
	}
	uctx, cancel := context.WithTimeout(actx, 30*time.Second)
	err = client.Update(uctx, ws.ContainerID, wire.Resources{CPU: o.cpuLimit(spec.VCPU, node), MemoryMB: spec.MemoryMB})
	cancel()
	if err != nil {
		// The container keeps its old limits, so the reservation goes back
		// to them; restoring what was held needs no capacity check.
		if _, rerr := o.db.ResizeWorkspace(context.WithoutCancel(ctx), ws.ID, old, registry.Limits{}); rerr != nil {
			o.log.Error("could not roll back reservation of failed scale", "workspace_id", ws.ID, "error", rerr)
		}
		return ScaleResult{}, fmt.Errorf("%w: %v", ErrScaleFailed, err)
	}
	if _, err := o.db.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
		w.Tier = newTier
		return nil
	}); err != nil {
		return ScaleResult{}, err
	}
	o.event(ctx, registry.Event{Kind: "workspace.scaled", ServerID: ws.ServerID, WorkspaceID: ws.ID,
		Message: fmt.Sprintf("scaled from %s to %s", ws.Tier, newTier), Data: map[string]any{"from": ws.Tier, "to": newTier}})
	res := ScaleResult{Success: true, Message: fmt.Sprintf("Successfully scaled workspace to %s tier", newTier),
		NewTier: newTier, OldTier: ws.Tier}
	if s, ok := o.tiers.Lookup(newTier); ok {
		res.EstimatedCostPerHour = strconv.FormatFloat(float64(s.HourlyRateCents)/100, 'f', -1, 64)
	}
	return res, nil
}

// scaleNode is the workspace's server as the capacity list has it: known
// and healthy or degraded, else ErrServerUnhealthy.
func (o *Orchestrator) scaleNode(ctx context.Context, serverID string) (placement.Node, error) {
	snap, err := o.Snapshot(ctx)
	if err != nil {
		return placement.Node{}, err
	}
	node, ok := snap.Node(serverID)
	if !ok || (node.Health != placement.HealthHealthy && node.Health != placement.HealthDegraded) {
		return placement.Node{}, fmt.Errorf("Server %s %w", serverID, ErrServerUnhealthy)
	}
	return node, nil
}

// fits is the capacity test of §3.16: the growth from one tier to another
// must fit the server's available room. It returns "" or the reason for
// the first resource that does not fit; shrinking always fits.
func fits(from, to tiers.Spec, avail placement.Resources) string {
	dCPU, dMem, dDisk := to.VCPU-from.VCPU, to.MemoryMB-from.MemoryMB, to.StorageGB-from.StorageGB
	switch {
	case dCPU > avail.CPU+cpuTolerance:
		return fmt.Sprintf("Insufficient CPU (need %.1f, have %.1f)", dCPU, avail.CPU)
	case dMem > avail.MemoryMB:
		return fmt.Sprintf("Insufficient memory (need %dMB, have %dMB)", dMem, avail.MemoryMB)
	case dDisk > avail.DiskGB:
		return fmt.Sprintf("Insufficient disk (need %dGB, have %dGB)", dDisk, avail.DiskGB)
	}
	return ""
}

// cpuLimit is the CPU limit to give a container: the tier's vCPUs, but no
// more than the server's real cores when they are known. Placement counts
// overcommitted vCPUs (BERTH_CPU_OVERCOMMIT), while Docker refuses a limit
// above the host's core count; a limit of every core is no limit anyway.
func (o *Orchestrator) cpuLimit(vcpu float64, n placement.Node) float64 {
	cores := n.Real.CPU / max(o.opts.CPUOvercommit, 1)
	if cores > 0 && vcpu > cores {
		return cores
	}
	return vcpu
}

// cpuTolerance absorbs float rounding in CPU sums, so "exactly full" fits.
const cpuTolerance = 1e-9

func tierInfo(s tiers.Spec) TierInfo {
	return TierInfo{Tier: s.Tier, DisplayName: s.DisplayName, CPU: s.VCPU, MemoryMB: s.MemoryMB, StorageGB: s.StorageGB,
		BandwidthMbps: s.BandwidthMbps, HourlyRateCents: s.HourlyRateCents, IsGPU: s.IsGPU, GPUType: s.GPUType}
}

// needsGPU tells whether a tier needs a GPU server (§9.1).
func needsGPU(s tiers.Spec) bool { return s.IsGPU || (s.GPUType != "" && s.GPUCount > 0) }

// reservation is what a workspace of a tier reserves on its server.
func reservation(s tiers.Spec) registry.Resources {
	return registry.Resources{CPU: s.VCPU, MemoryMB: s.MemoryMB, DiskGB: s.StorageGB,
		BandwidthMbps: max(s.BandwidthMbps, 100), GPUCount: s.GPUCount}
}
