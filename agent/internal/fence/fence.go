package fence

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/shared/wire"
)

// Docker is what the fence needs of the Docker adapter.
type Docker interface {
	List(ctx context.Context) ([]wire.Container, error)
	Stop(ctx context.Context, id string, timeout time.Duration) error
}

// Fence stops this host's workspaces when it is cut off. Run owns it.
type Fence struct {
	lease       time.Duration
	lastContact func() time.Time // last request from the scheduler
	peers       func() int       // other gossip members alive
	docker      Docker
	log         hclog.Logger
	now         func() time.Time
}

// New builds a fence; a lease of 0 disables it. log is used as given
// (the caller names it).
func New(lease time.Duration, lastContact func() time.Time, peers func() int, d Docker, log hclog.Logger) *Fence {
	return &Fence{lease: lease, lastContact: lastContact, peers: peers, docker: d, log: log, now: time.Now}
}

// Isolated reports whether the host has been cut off for longer than the
// lease: no scheduler request and no live gossip peer.
func (f *Fence) Isolated() bool {
	return f.lease > 0 && f.peers() == 0 && f.now().Sub(f.lastContact()) > f.lease
}

// Run checks every lease/4 until ctx ends. Once isolated, it stops every
// running workspace, once; it re-arms when contact comes back.
func (f *Fence) Run(ctx context.Context) error {
	if f.lease <= 0 {
		f.log.Info("fencing disabled")
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(max(f.lease/4, 100*time.Millisecond))
	defer t.Stop()
	fenced := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		switch isolated := f.Isolated(); {
		case isolated && !fenced:
			f.log.Warn("lost the scheduler and every gossip peer for longer than the lease: stopping workspaces",
				"lease", f.lease, "last_contact", f.lastContact())
			fenced = f.StopAll(ctx) == nil
		case !isolated && fenced:
			f.log.Info("contact is back; the scheduler decides what restarts")
			fenced = false
		}
	}
}

// StopAll stops every running berth workspace on the host. It returns the
// last error, after trying them all.
func (f *Fence) StopAll(ctx context.Context) error {
	cs, err := f.docker.List(ctx)
	if err != nil {
		f.log.Error("list containers", "error", err)
		return err
	}
	var last error
	for _, c := range cs {
		if c.State != "running" || c.Labels[wire.LabelPodexWorkspace] != "true" {
			continue
		}
		if err := f.docker.Stop(ctx, c.ID, 10*time.Second); err != nil {
			f.log.Error("stop workspace", "container", c.Name, "error", err)
			last = err
			continue
		}
		f.log.Warn("stopped workspace", "container", c.Name, "workspace_id", c.Labels[wire.LabelWorkspaceID])
	}
	return last
}
