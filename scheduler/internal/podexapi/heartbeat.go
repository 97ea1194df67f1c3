package podexapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/fleet"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// ServerUsage is what a server heartbeat reports (§7's query parameters).
type ServerUsage struct {
	UsedCPU          float64 // cores busy: the host's CPU use × its cores
	UsedMemoryMB     int64   // memory in use: total − available
	UsedDiskGB       int64   // disk in use on Docker's data root: total − free, rounded
	ActiveWorkspaces int     // this scheduler's running workspaces on the server
}

// UsageOf reads a server's usage from what its agent just measured.
func UsageOf(c wire.Capacity, activeWorkspaces int) ServerUsage {
	return ServerUsage{
		UsedCPU:          math.Round(c.CPUPercent/100*float64(c.CPUCores)*100) / 100,
		UsedMemoryMB:     max(0, c.MemoryTotalMB-c.MemoryAvailableMB),
		UsedDiskGB:       int64(math.Round(max(0, c.DiskTotalGB-c.DiskFreeGB))),
		ActiveWorkspaces: activeWorkspaces,
	}
}

// Heartbeat is POST /api/servers/{id}/heartbeat?used_cpu=&used_memory_mb=
// &used_disk_gb=&active_workspaces= (service token, no body). The API sets
// the server's last heartbeat and usage, and makes an ERROR or OFFLINE
// server ACTIVE again. ErrNotFound: the API does not know the server.
func (c *Client) Heartbeat(ctx context.Context, serverID string, u ServerUsage) error {
	q := url.Values{
		"used_cpu":          {strconv.FormatFloat(u.UsedCPU, 'f', -1, 64)},
		"used_memory_mb":    {strconv.FormatInt(u.UsedMemoryMB, 10)},
		"used_disk_gb":      {strconv.FormatInt(u.UsedDiskGB, 10)},
		"active_workspaces": {strconv.Itoa(u.ActiveWorkspaces)},
	}
	return c.do(ctx, call{op: "servers.heartbeat", method: http.MethodPost,
		path: "/api/servers/" + url.PathEscape(serverID) + "/heartbeat", query: q, auth: serviceToken})
}

// HeartbeatRegistry is what the heartbeats read and record.
type HeartbeatRegistry interface {
	ListServers(ctx context.Context) ([]registry.Server, error)
	ListWorkspaces(ctx context.Context, f registry.WorkspaceFilter) ([]registry.Workspace, error)
	SetServerUsage(ctx context.Context, id string, u registry.ReportedUsage) error
}

// HealthView tells a server's current health (health.Tracker); ok is false
// before the tracker has an opinion.
type HealthView interface {
	Health(serverID string) (fleet.Health, bool)
}

// Measurer asks a server's agent for its capacity and use now (the agent
// client's Capacity).
type Measurer interface {
	Capacity(ctx context.Context, s registry.Server) (wire.Capacity, error)
}

// Heartbeats reports each registered server to the API every
// Config.HeartbeatInterval, and only a server that answers: its health
// (the tracker's probes) must be healthy or degraded, and its agent must
// answer a capacity call then, whose figures are the ones sent (fixing
// quirk §14.13: the Python service reported a failed server as alive, with
// old figures). A server that does not answer gets no heartbeat, so the API
// sees it go stale. The figures are also stored as the server's reported
// usage. Run owns its loop.
type Heartbeats struct {
	c       *Client
	reg     HeartbeatRegistry
	health  HealthView
	measure Measurer
	log     hclog.Logger
}

// NewHeartbeats returns the heartbeats over c.
func NewHeartbeats(c *Client, reg HeartbeatRegistry, health HealthView, measure Measurer) *Heartbeats {
	return &Heartbeats{c: c, reg: reg, health: health, measure: measure, log: c.log.Named("heartbeat")}
}

// heartbeatConcurrency bounds the servers measured and reported at once.
const heartbeatConcurrency = 8

// Once reports every server that answers and returns how many the API
// took.
func (h *Heartbeats) Once(ctx context.Context) int {
	servers, err := h.reg.ListServers(ctx)
	if err != nil {
		h.log.Warn("list servers", "error", err)
		return 0
	}
	running, err := h.reg.ListWorkspaces(ctx, registry.WorkspaceFilter{Statuses: []fleet.Status{fleet.StatusRunning}})
	if err != nil {
		h.log.Warn("list workspaces", "error", err)
		return 0
	}
	active := map[string]int{}
	for _, w := range running {
		active[w.ServerID]++
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent int
		sem  = make(chan struct{}, heartbeatConcurrency)
	)
	for _, s := range servers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if h.one(ctx, s, active[s.ID]) {
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return sent
}

// one reports one server if it answers.
func (h *Heartbeats) one(ctx context.Context, s registry.Server, active int) bool {
	if hl, ok := h.health.Health(s.ID); !ok || !fleet.Usable(hl) {
		h.log.Debug("no heartbeat: server not answering", "server", s.ID, "health", hl)
		return false
	}
	mctx, cancel := context.WithTimeout(ctx, h.c.cfg.Timeout)
	capa, err := h.measure.Capacity(mctx, s)
	cancel()
	if err != nil {
		h.log.Debug("no heartbeat: agent did not answer", "server", s.ID, "error", err)
		return false
	}
	u := UsageOf(capa, active)
	if err := h.reg.SetServerUsage(ctx, s.ID, registry.ReportedUsage{CPU: u.UsedCPU, MemoryMB: u.UsedMemoryMB,
		DiskGB: u.UsedDiskGB, ActiveWorkspaces: u.ActiveWorkspaces, ReportedAt: time.Now()}); err != nil &&
		!errors.Is(err, registry.ErrNotFound) {
		h.log.Warn("record server usage", "server", s.ID, "error", err)
	}
	switch err := h.c.Heartbeat(ctx, s.ID, u); {
	case errors.Is(err, ErrNotFound):
		h.log.Debug("API does not know the server", "server", s.ID)
		return false
	case err != nil:
		h.log.Warn("server heartbeat to API failed", "server", s.ID, "error", err)
		return false
	}
	return true
}

// firstHeartbeat is when the first round runs after the start: the health
// tracker probes every server about once a second, so by then it has an
// opinion of each.
const firstHeartbeat = 3 * time.Second

// Run reports a few seconds after the start, then every interval, until
// ctx ends.
func (h *Heartbeats) Run(ctx context.Context) error {
	t := time.NewTimer(min(firstHeartbeat, h.c.cfg.HeartbeatInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.Once(ctx)
			t.Reset(h.c.cfg.HeartbeatInterval)
		}
	}
}
