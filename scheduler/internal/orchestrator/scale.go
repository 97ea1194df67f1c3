package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/wire"
)

// TierOption is a tier a workspace could move to, and whether its server
// has the room for it.
type TierOption struct {
	tiers.Spec
	Shortfall *fleet.Shortfall // nil: it fits; else the first resource short
}

// ScaleProblem is why scale-options has no options at all.
type ScaleProblem int

const (
	ScaleOK             ScaleProblem = iota
	ScaleNoServer                    // the workspace has no server
	ScaleServerUnusable              // its server is unknown, or neither healthy nor degraded
)

// ScaleOptions answers GET …/scale-options (§3.16).
type ScaleOptions struct {
	CurrentTier    string
	Current        *tiers.Spec // nil: the current tier is unknown
	ServerID       string      // "" = none
	AvailableTiers []TierOption
	Problem        ScaleProblem // when set, there is no tier info and no options
}

// ScaleOutcome is how a scale ended when it did not fail.
type ScaleOutcome int

const (
	Scaled        ScaleOutcome = iota
	AlreadyOnTier              // nothing to do
	NoRoom                     // the growth does not fit the server
)

// ScaleResult answers POST …/scale (§3.17).
type ScaleResult struct {
	Outcome  ScaleOutcome
	OldTier  string
	NewTier  string
	ServerID string
	New      *tiers.Spec // the new tier's spec when known (its price)
}

// ScaleOptions lists the tiers the workspace can move to on its server.
func (l *Lifecycle) ScaleOptions(ctx context.Context, ws registry.Workspace) (ScaleOptions, error) {
	out := ScaleOptions{CurrentTier: ws.Tier, ServerID: ws.ServerID, AvailableTiers: []TierOption{}}
	if ws.ServerID == "" {
		out.Problem = ScaleNoServer
		return out, nil
	}
	node, err := l.usableNode(ctx, ws.ServerID)
	var unusable *ServerUnusableError
	if errors.As(err, &unusable) {
		out.Problem = ScaleServerUnusable
		return out, nil
	}
	if err != nil {
		return ScaleOptions{}, err
	}
	if current, known := l.Tiers.Lookup(ws.Tier); known {
		out.Current = &current
	}
	from := ws.Reservation
	avail := node.Effective().Available
	arch := wire.NormalizeArch(node.Architecture)
	nodeGPU := node.GPUCount > 0 || node.GPUType != ""
	for _, spec := range l.Tiers.All() {
		switch {
		case spec.Tier == ws.Tier,
			wire.NormalizeArch(spec.Architecture) != arch,
			spec.NeedsGPU() && !nodeGPU,
			spec.GPUType != "" && node.GPUType != "" && spec.GPUType != node.GPUType:
			continue
		}
		opt := TierOption{Spec: spec}
		if short, ok := fleet.Fits(avail, fleet.Growth(from, spec.Resources())); !ok {
			opt.Shortfall = &short
		}
		out.AvailableTiers = append(out.AvailableTiers, opt)
	}
	slices.SortStableFunc(out.AvailableTiers, func(a, b TierOption) int {
		return int(a.HourlyRateCents - b.HourlyRateCents)
	})
	return out, nil
}

// Scale moves a workspace to another tier on its server, live: the
// reservation is resized (the registry checks the growth with the same
// fleet.Fits as ScaleOptions), then the container's CPU and memory limits
// are updated, then the tier is recorded. A failed container update undoes
// the resize and is an error (§14 row 14), not a success.
func (l *Lifecycle) Scale(ctx context.Context, ws registry.Workspace, newTier string) (ScaleResult, error) {
	defer l.locks.lock(ws.ID)()
	ws, err := l.DB.GetWorkspace(ctx, ws.ID) // what an earlier scale left
	if errors.Is(err, registry.ErrNotFound) {
		return ScaleResult{}, ErrNotFound
	} else if err != nil {
		return ScaleResult{}, err
	}
	res := ScaleResult{OldTier: ws.Tier, NewTier: newTier, ServerID: ws.ServerID}
	if ws.Tier == newTier {
		res.Outcome = AlreadyOnTier
		return res, nil
	}
	if ws.ServerID == "" {
		return ScaleResult{}, ErrNoServerAssignment
	}
	node, err := l.usableNode(ctx, ws.ServerID)
	if err != nil {
		return ScaleResult{}, err
	}
	spec := l.Tiers.Resolve(newTier)
	if _, ok := fleet.Fits(node.Effective().Available, fleet.Growth(ws.Reservation, spec.Resources())); !ok {
		res.Outcome = NoRoom
		return res, nil
	}
	if ws.ContainerID == "" {
		return ScaleResult{}, ErrScaleNoContainer
	}
	client, actx, err := l.client(ctx, ws)
	if err != nil {
		return ScaleResult{}, err
	}
	old := ws.Reservation
	if _, err := l.DB.ResizeWorkspace(ctx, ws.ID, spec.Resources(), limits(node)); errors.Is(err, registry.ErrInsufficientCapacity) {
		res.Outcome = NoRoom
		return res, nil
	} else if err != nil {
		return ScaleResult{}, err
	}
	uctx, cancel := context.WithTimeout(actx, 30*time.Second)
	err = client.Update(uctx, ws.ContainerID, wire.Resources{CPU: l.cpuLimit(spec.VCPU, node), MemoryMB: spec.MemoryMB})
	cancel()
	if err != nil {
		// The container keeps its old limits, so the reservation goes back
		// to them; restoring what was held needs no capacity check.
		if _, rerr := l.DB.ResizeWorkspace(context.WithoutCancel(ctx), ws.ID, old, registry.Limits{}); rerr != nil {
			l.log.Error("could not roll back reservation of failed scale", "workspace_id", ws.ID, "error", rerr)
		}
		return ScaleResult{}, fmt.Errorf("%w: %w", ErrScaleFailed, err)
	}
	if _, err := l.DB.UpdateWorkspace(ctx, ws.ID, func(w *registry.Workspace) error {
		w.Tier = newTier
		return nil
	}); err != nil {
		return ScaleResult{}, err
	}
	l.event(ctx, registry.Event{Kind: "workspace.scaled", ServerID: ws.ServerID, WorkspaceID: ws.ID,
		Message: fmt.Sprintf("scaled from %s to %s", ws.Tier, newTier), Data: map[string]any{"from": ws.Tier, "to": newTier}})
	res.Outcome = Scaled
	if s, ok := l.Tiers.Lookup(newTier); ok {
		res.New = &s
	}
	return res, nil
}

// usableNode is the workspace's server as the capacity list has it: known
// and usable (fleet.Usable), else a *ServerUnusableError.
func (l *Lifecycle) usableNode(ctx context.Context, serverID string) (placement.Node, error) {
	snap, err := l.Snapshot(ctx)
	if err != nil {
		return placement.Node{}, err
	}
	node, ok := snap.Node(serverID)
	if !ok || !fleet.Usable(node.Health) {
		return placement.Node{}, &ServerUnusableError{ServerID: serverID}
	}
	return node, nil
}
