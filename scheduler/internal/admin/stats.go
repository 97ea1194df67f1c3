package admin

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// statsTimeout bounds GET /admin/servers/{id}/stats as a whole: the
// capacity and container list, then every container's sample. Samples not
// read by then are reported missing.
const statsTimeout = 8 * time.Second

// statsParallel is how many container samples are read at once.
const statsParallel = 8

// HostCapacity is what an agent measures of its host, now.
type HostCapacity struct {
	Architecture      string  `json:"architecture"`
	CPUCores          int     `json:"cpu_cores"`
	CPUPercent        float64 `json:"cpu_percent"`
	Load1             float64 `json:"load1"`
	MemoryTotalMB     int64   `json:"memory_total_mb"`
	MemoryAvailableMB int64   `json:"memory_available_mb"`
	MemoryUsedMB      int64   `json:"memory_used_mb"`
	DiskTotalGB       float64 `json:"disk_total_gb"`
	DiskFreeGB        float64 `json:"disk_free_gb"`
	DiskUsedGB        float64 `json:"disk_used_gb"`
	Containers        int     `json:"containers"`         // all containers of the host's dockerd
	ContainersRunning int     `json:"containers_running"` // running ones
	Images            int     `json:"images"`
	Workspaces        int     `json:"workspaces"` // berth containers
	SampledAt         *string `json:"sampled_at"`
}

// ContainerUsage is one berth container of a host and its resource use.
type ContainerUsage struct {
	ContainerID string               `json:"container_id"`
	Name        string               `json:"name"`
	WorkspaceID string               `json:"workspace_id"`
	Image       string               `json:"image"`
	State       string               `json:"state"`
	Status      string               `json:"status"`
	Usage       *wire.ContainerStats `json:"usage"` // null when not running or not sampled
	Error       string               `json:"error"` // why usage is missing, if it is an error
}

// ServerStats is GET /admin/servers/{id}/stats: live figures from the agent.
type ServerStats struct {
	ServerID    string           `json:"server_id"`
	Capacity    HostCapacity     `json:"capacity"`
	Containers  []ContainerUsage `json:"containers"`
	Partial     bool             `json:"partial"` // some running containers were not sampled in time
	CollectedAt *string          `json:"collected_at"`
}

func (a *API) serverStats(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), statsTimeout)
	defer cancel()
	id := c.Param("id")
	s, err := a.d.Registry.GetServer(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return failf(ErrNotFound, "server %q not found", id)
	} else if err != nil {
		return err
	}
	client := a.d.Agents.Client(s.ID, orchestrator.AgentAddr(s))
	capa, err := client.Capacity(ctx)
	if err != nil {
		return failf(ErrAgent, "agent of server %q at %s: capacity: %v", id, orchestrator.AgentAddr(s), err)
	}
	containers, err := client.List(ctx)
	if err != nil {
		return failf(ErrAgent, "agent of server %q at %s: containers: %v", id, orchestrator.AgentAddr(s), err)
	}
	out := ServerStats{ServerID: id, Capacity: hostCapacityOf(capa), Containers: make([]ContainerUsage, len(containers))}

	var wg sync.WaitGroup
	sem := make(chan struct{}, statsParallel)
	for i, ctr := range containers {
		out.Containers[i] = ContainerUsage{ContainerID: ctr.ID, Name: ctr.Name, WorkspaceID: ctr.Labels[wire.LabelWorkspaceID],
			Image: ctr.Image, State: ctr.State, Status: ctr.Status}
		if ctr.State != "running" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				out.Containers[i].Error = "not sampled within the time limit"
				return
			}
			st, err := client.Stats(ctx, ctr.ID)
			if err != nil {
				out.Containers[i].Error = err.Error()
				return
			}
			out.Containers[i].Usage = &st
		}()
	}
	wg.Wait()
	for _, u := range out.Containers {
		if u.State == "running" && u.Usage == nil {
			out.Partial = true
		}
	}
	out.CollectedAt = timestamp(time.Now())
	return c.JSON(http.StatusOK, out)
}

func hostCapacityOf(c wire.Capacity) HostCapacity {
	return HostCapacity{
		Architecture: c.Architecture, CPUCores: c.CPUCores, CPUPercent: c.CPUPercent, Load1: c.Load1,
		MemoryTotalMB: c.MemoryTotalMB, MemoryAvailableMB: c.MemoryAvailableMB,
		MemoryUsedMB: max(0, c.MemoryTotalMB-c.MemoryAvailableMB),
		DiskTotalGB:  c.DiskTotalGB, DiskFreeGB: c.DiskFreeGB, DiskUsedGB: max(0, c.DiskTotalGB-c.DiskFreeGB),
		Containers: c.Containers, ContainersRunning: c.ContainersRunning, Images: c.Images, Workspaces: c.Workspaces,
		SampledAt: timestamp(c.SampledAt),
	}
}
