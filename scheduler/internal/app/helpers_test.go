package app

import (
	"context"
	"net"
	"strconv"

	"berth/scheduler/internal/registry"
)

func mustPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func setCapacity(ctx context.Context, a *App, id string, cpu float64, memMB, diskGB int64) error {
	_, err := a.db.UpdateServer(ctx, id, registry.ServerPatch{TotalCPU: &cpu, TotalMemoryMB: &memMB, TotalDiskGB: &diskGB})
	return err
}
