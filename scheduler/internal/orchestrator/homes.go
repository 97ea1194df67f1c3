package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// A workspace's home directory lives on one server (registry.Home). A
// container is only ever started where its home is: placement prefers the
// home's server (placement.Request.HomeServerID), and when the workspace
// must run elsewhere (its server is draining, full, or was lost and is
// back) the home is copied agent → agent first, verified, and only then is
// the old copy removed. A home starts empty only when it is new, or when
// the server that held it was removed from the registry (gone for good):
// metadata.home_reset says so.

// Home event kinds.
const (
	EventHomeMoveStarted  = "home.move.started"
	EventHomeMoveProgress = "home.move.progress"
	EventHomeMoveFinished = "home.move.finished"
	EventHomeMoveFailed   = "home.move.failed"
	EventHomeReset        = "home.reset"
)

// homeProgressEvery is how often a move's progress is written as an event.
const homeProgressEvery = 5 * time.Second

// homeExportTTL is how long a source agent honours a move's token.
const homeExportTTL = time.Hour

// HomeUnavailableError is a start refused because the workspace's home is
// on a server that does not answer now (down, but not removed): starting it
// elsewhere would start it without its files. It can start once the server
// is back, or after an operator removed the server (the home is then lost).
type HomeUnavailableError struct {
	ServerID string
	Cause    error
}

func (e *HomeUnavailableError) Error() string {
	return fmt.Sprintf("home directory is on server %s, which is not reachable: %v", e.ServerID, e.Cause)
}

func (e *HomeUnavailableError) Unwrap() error { return e.Cause }

// homeMoveError is a move that failed on the target's side: another
// target may do.
type homeMoveError struct {
	To    string
	Cause error
}

func (e *homeMoveError) Error() string {
	return fmt.Sprintf("copying the home directory to %s failed: %v", e.To, e.Cause)
}

func (e *homeMoveError) Unwrap() error { return e.Cause }

// homeOf returns the home of id, checking it belongs to userID
// (ErrOwnedByOther otherwise); ok is false when the id has no home.
func (c *core) homeOf(ctx context.Context, id, userID string) (registry.Home, bool, error) {
	h, err := c.DB.GetHome(ctx, id)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return registry.Home{}, false, nil
	case err != nil:
		return registry.Home{}, false, err
	case h.UserID != userID:
		return registry.Home{}, false, ErrOwnedByOther
	}
	return h, true, nil
}

// checkHomeReachable refuses, before anything is reserved, a start away
// from a home whose server is known and does not answer; placement's own
// failure (placeErr) is then beside the point. It passes placeErr on
// otherwise.
func checkHomeReachable(snap Snapshot, dec placement.Decision, placeErr error, home *registry.Home) error {
	if home == nil || home.ServerID == "" || (placeErr == nil && dec.Chosen.NodeID == home.ServerID) {
		return placeErr
	}
	h := *home
	n, ok := snap.Node(h.ServerID)
	if ok && !fleet.Usable(n.Health) {
		return &HomeUnavailableError{ServerID: h.ServerID, Cause: fmt.Errorf("server is %s", n.Health)}
	}
	return placeErr
}

// homeOutcome is what bringHome did.
type homeOutcome struct {
	fresh bool   // the home is new here: the container's mount starts empty
	reset bool   // the container starts with an empty home, although the id had one
	from  string // the server the home was copied from; "" if it did not move
}

// bringHome makes sure ws's home is on server before its container is made
// there. home is the id's home as it was before the reservation, nil when
// the id had none: a new home starts empty (the container's mount is
// Fresh: any directory a forgotten workspace of that id left there is
// removed first, so nobody inherits it); a home on server stays; a lost
// home starts anew (reset); a home elsewhere is copied over (moveHome).
// The caller holds the workspace's lock.
func (p *Placer) bringHome(ctx context.Context, ws registry.Workspace, home *registry.Home, server registry.Server) (homeOutcome, error) {
	switch {
	case home == nil:
		return homeOutcome{fresh: true}, nil
	case home.Lost():
		p.event(ctx, registry.Event{Kind: EventHomeReset, ServerID: server.ID, WorkspaceID: ws.ID,
			Message: "the server that held the home directory was removed; the workspace starts with an empty home"})
		_, err := p.DB.FinishHomeMove(ctx, ws.ID, server.ID)
		return homeOutcome{reset: true, fresh: true}, err
	case home.ServerID == server.ID:
		return homeOutcome{}, nil
	}
	from, err := p.DB.GetServer(ctx, home.ServerID)
	if err != nil {
		return homeOutcome{}, err
	}
	reset, err := p.moveHome(ctx, ws.ID, from, server)
	if err != nil {
		return homeOutcome{}, err
	}
	return homeOutcome{reset: reset, fresh: reset, from: from.ID}, nil
}

// moveHome copies the home of id from one server to another (see
// wire/homes.go), records the verified copy as the live one, and removes
// the old copy (or leaves it to the cleanup loop when its server does not
// answer). Failures on the source's side are *HomeUnavailableError, on
// the target's *homeMoveError; either way the old copy is untouched and
// stays the live one. reset is set when the source had no data for id.
func (p *Placer) moveHome(ctx context.Context, id string, from, to registry.Server) (reset bool, err error) {
	token, err := newToken()
	if err != nil {
		return false, err
	}
	if err := p.DB.BeginHomeMove(ctx, id, to.ID); err != nil {
		return false, err
	}
	finished := false
	defer func() {
		if !finished {
			if aerr := p.DB.AbortHomeMove(context.WithoutCancel(ctx), id); aerr != nil {
				p.log.Error("could not record the end of a failed home move", "workspace_id", id, "error", aerr)
			}
		}
	}()

	src := p.agent(from)
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = src.HomeExport(ectx, wire.HomeExport{Path: HomeDir(id), Token: token, TTLSeconds: int(homeExportTTL / time.Second)})
	cancel()
	switch {
	case errors.Is(err, agentclient.ErrNotFound):
		// The source answers but has no data for the id: nothing to move.
		p.event(ctx, registry.Event{Kind: EventHomeReset, ServerID: to.ID, WorkspaceID: id,
			Message: fmt.Sprintf("server %s has no home directory for the workspace; it starts with an empty home", from.ID)})
		_, err := p.DB.FinishHomeMove(ctx, id, to.ID)
		finished = err == nil
		return true, err
	case err != nil:
		p.homeMoveFailed(ctx, id, from.ID, to.ID, err)
		return false, &HomeUnavailableError{ServerID: from.ID, Cause: err}
	}

	p.event(ctx, registry.Event{Kind: EventHomeMoveStarted, ServerID: to.ID, WorkspaceID: id,
		Message: fmt.Sprintf("copying the home directory from %s to %s", from.ID, to.ID),
		Data:    map[string]any{"from": from.ID, "to": to.ID}})
	start, lastEvent := time.Now(), time.Now()
	mctx, cancel := context.WithTimeout(ctx, p.cfg.HomeMoveTimeout)
	defer cancel()
	final, err := p.agent(to).HomeImport(mctx, wire.HomeImport{Path: HomeDir(id), SourceServerID: from.ID,
		SourceAddr: AgentAddr(from), Token: token}, func(pr wire.HomeProgress) {
		if time.Since(lastEvent) < homeProgressEvery {
			return
		}
		lastEvent = time.Now()
		p.event(ctx, registry.Event{Kind: EventHomeMoveProgress, ServerID: to.ID, WorkspaceID: id,
			Message: fmt.Sprintf("copied %s of %s", mib(pr.Bytes), mib(pr.TotalBytes)),
			Data:    map[string]any{"from": from.ID, "to": to.ID, "bytes": pr.Bytes, "total_bytes": pr.TotalBytes, "files": pr.Files}})
	})
	if err != nil {
		p.homeMoveFailed(ctx, id, from.ID, to.ID, err)
		if errors.Is(err, agentclient.ErrSourceFailed) {
			return false, &HomeUnavailableError{ServerID: from.ID, Cause: err}
		}
		return false, &homeMoveError{To: to.ID, Cause: err}
	}
	if _, err := p.DB.FinishHomeMove(ctx, id, to.ID); err != nil {
		return false, err
	}
	finished = true
	took := time.Since(start)
	p.event(ctx, registry.Event{Kind: EventHomeMoveFinished, ServerID: to.ID, WorkspaceID: id,
		Message: fmt.Sprintf("home directory copied from %s to %s and verified: %s in %d entries, %.1f s",
			from.ID, to.ID, mib(final.Bytes), final.Files, took.Seconds()),
		Data: map[string]any{"from": from.ID, "to": to.ID, "bytes": final.Bytes, "files": final.Files,
			"skipped": final.Skipped, "seconds": took.Seconds(), "digest": final.Digest}})
	p.log.Info("home moved", "workspace_id", id, "from", from.ID, "to", to.ID, "bytes", final.Bytes, "seconds", took.Seconds())
	p.removeLeftover(ctx, registry.Leftover{WorkspaceID: id, ServerID: from.ID})
	return false, nil
}

func (p *Placer) homeMoveFailed(ctx context.Context, id, from, to string, err error) {
	p.log.Warn("home move failed; the old copy stays the live one", "workspace_id", id, "from", from, "to", to, "error", err)
	p.event(ctx, registry.Event{Kind: EventHomeMoveFailed, ServerID: to, WorkspaceID: id,
		Message: fmt.Sprintf("copying the home directory from %s to %s failed; the copy on %s is kept: %v", from, to, from, err),
		Data:    map[string]any{"from": from, "to": to}})
}

// removeLeftover removes an old copy of a home if its server answers and
// the copy is not (again) the live one or a move's target; otherwise it
// stays listed for the next cleanup round. The caller holds the
// workspace's lock.
func (c *core) removeLeftover(ctx context.Context, l registry.Leftover) bool {
	h, err := c.DB.GetHome(ctx, l.WorkspaceID)
	switch {
	case err == nil && (h.ServerID == l.ServerID || h.MovingTo == l.ServerID):
		// Live again: not a leftover any more.
		return c.DB.DeleteLeftover(ctx, l.WorkspaceID, l.ServerID) == nil
	case err != nil && !errors.Is(err, registry.ErrNotFound):
		return false
	}
	s, err := c.DB.GetServer(ctx, l.ServerID)
	if err != nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.agent(s).RemoveData(rctx, DataDir(l.WorkspaceID)); err != nil && !errors.Is(err, agentclient.ErrNotFound) {
		c.log.Info("old home copy not removed now; the cleanup will retry", "workspace_id", l.WorkspaceID, "server", l.ServerID, "error", err)
		return false
	}
	if err := c.DB.DeleteLeftover(ctx, l.WorkspaceID, l.ServerID); err != nil {
		return false
	}
	c.log.Info("old home copy removed", "workspace_id", l.WorkspaceID, "server", l.ServerID)
	return true
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
