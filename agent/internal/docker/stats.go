package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
)

// Stats returns one sample of a berth container's resource use, with the
// formulas of the compute contract §10.4, except that cpu_limit_cores is the
// container's CPU limit when it has one and the uptime is counted from its
// start. The daemon is asked for a single non-streamed sample, which it
// answers after about a second so that the CPU figure is a real delta. A
// stopped container gives the defaults (zeros, memory limit 1024 MB).
func (c *Client) Stats(ctx context.Context, id string) (wire.ContainerStats, error) {
	ctr, err := c.owned(ctx, id)
	if err != nil {
		return wire.ContainerStats{}, err
	}
	resp, err := c.api.ContainerStats(ctx, ctr.ID, false)
	if err != nil {
		return wire.ContainerStats{}, wrapErr(err, "stats of %s", id)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return wire.ContainerStats{}, fmt.Errorf("%w: decode stats of %s: %w", ErrDocker, id, err)
	}
	var nanoCPUs int64
	if ctr.HostConfig != nil {
		nanoCPUs = ctr.HostConfig.NanoCPUs
	}
	var started time.Time
	if ctr.State != nil && ctr.State.Running {
		started = parseDockerTime(ctr.State.StartedAt)
	}
	return statsFromDocker(s, nanoCPUs, started, time.Now()), nil
}

// statsFromDocker applies the contract's formulas (§10.4). started is zero
// for a container that is not running.
func statsFromDocker(s container.StatsResponse, nanoCPUs int64, started, now time.Time) wire.ContainerStats {
	out := wire.ContainerStats{MemoryLimitMB: 1024, CollectedAt: now.UTC()}

	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if online == 0 {
		online = 1
	}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	if cpuDelta > 0 && sysDelta > 0 {
		out.CPUPercent = cpuDelta / sysDelta * online * 100
	}
	out.CPULimitCores = online
	if nanoCPUs > 0 {
		out.CPULimitCores = float64(nanoCPUs) / 1e9
	}

	out.MemoryUsedMB = int64(s.MemoryStats.Usage / mib)
	if s.MemoryStats.Limit > 0 {
		out.MemoryLimitMB = int64(s.MemoryStats.Limit / mib)
		out.MemoryPercent = float64(s.MemoryStats.Usage) / float64(s.MemoryStats.Limit) * 100
	}

	var rx, tx uint64
	for _, n := range s.Networks {
		rx += n.RxBytes
		tx += n.TxBytes
	}
	out.NetworkRxMB = float64(rx) / mib
	out.NetworkTxMB = float64(tx) / mib

	var read, write uint64
	for _, e := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			read += e.Value
		case "write":
			write += e.Value
		}
	}
	out.DiskReadMB = float64(read) / mib
	out.DiskWriteMB = float64(write) / mib

	if !started.IsZero() && now.After(started) {
		out.UptimeSeconds = int64(now.Sub(started).Seconds())
	}
	return out
}
