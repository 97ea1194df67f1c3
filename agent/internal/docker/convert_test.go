package docker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"berth/shared/wire"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/google/go-cmp/cmp"
)

func TestStatsFromDocker(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	busy := container.StatsResponse{
		CPUStats: container.CPUStats{
			CPUUsage:    container.CPUUsage{TotalUsage: 3_000_000_000},
			SystemUsage: 20_000_000_000,
			OnlineCPUs:  2,
		},
		PreCPUStats: container.CPUStats{
			CPUUsage:    container.CPUUsage{TotalUsage: 2_000_000_000},
			SystemUsage: 10_000_000_000,
		},
		MemoryStats: container.MemoryStats{Usage: 256 << 20, Limit: 1024 << 20},
		Networks: map[string]container.NetworkStats{
			"eth0": {RxBytes: 1 << 20, TxBytes: 2 << 20},
			"eth1": {RxBytes: 1 << 20, TxBytes: 0},
		},
		BlkioStats: container.BlkioStats{IoServiceBytesRecursive: []container.BlkioStatEntry{
			{Op: "Read", Value: 3 << 20}, {Op: "read", Value: 1 << 20},
			{Op: "Write", Value: 5 << 20}, {Op: "Total", Value: 9 << 20},
		}},
	}
	tests := []struct {
		name     string
		in       container.StatsResponse
		nanoCPUs int64
		started  time.Time
		want     wire.ContainerStats
	}{
		{
			name: "empty stats give the defaults",
			want: wire.ContainerStats{CPULimitCores: 1, MemoryLimitMB: 1024, CollectedAt: now},
		},
		{
			name:    "busy container without cpu limit",
			in:      busy,
			started: now.Add(-90 * time.Second),
			want: wire.ContainerStats{
				CPUPercent: 20, CPULimitCores: 2,
				MemoryUsedMB: 256, MemoryLimitMB: 1024, MemoryPercent: 25,
				DiskReadMB: 4, DiskWriteMB: 5, NetworkRxMB: 2, NetworkTxMB: 2,
				UptimeSeconds: 90, CollectedAt: now,
			},
		},
		{
			name:     "cpu limit from NanoCPUs",
			in:       busy,
			nanoCPUs: 500_000_000,
			want: wire.ContainerStats{
				CPUPercent: 20, CPULimitCores: 0.5,
				MemoryUsedMB: 256, MemoryLimitMB: 1024, MemoryPercent: 25,
				DiskReadMB: 4, DiskWriteMB: 5, NetworkRxMB: 2, NetworkTxMB: 2,
				CollectedAt: now,
			},
		},
		{
			name: "no delta without precpu system usage",
			in: container.StatsResponse{CPUStats: container.CPUStats{
				CPUUsage: container.CPUUsage{TotalUsage: 5, PercpuUsage: []uint64{1, 2, 3, 4}}, SystemUsage: 0,
			}},
			want: wire.ContainerStats{CPULimitCores: 4, MemoryLimitMB: 1024, CollectedAt: now},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statsFromDocker(tt.in, tt.nanoCPUs, tt.started, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodePullStream(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		want    []wire.PullProgress
		wantErr string // substring; "" for success
	}{
		{
			name: "success",
			stream: `{"status":"Pulling from library/alpine","id":"3.20"}
{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[=>  ]","id":"abc"}
{"status":"Status: Downloaded newer image for alpine:3.20"}
`,
			want: []wire.PullProgress{
				{Status: "Pulling from library/alpine", ID: "3.20"},
				{Status: "Downloading", ID: "abc", Progress: "[=>  ]"},
				{Status: "Status: Downloaded newer image for alpine:3.20"},
			},
		},
		{
			name: "error inside the stream",
			stream: `{"status":"Pulling from library/alpine","id":"3.20"}
{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}
`,
			want: []wire.PullProgress{
				{Status: "Pulling from library/alpine", ID: "3.20"},
				{Error: "manifest unknown"},
			},
			wantErr: "manifest unknown",
		},
		{
			name:    "error without detail",
			stream:  `{"error":"short failure"}`,
			want:    []wire.PullProgress{{Error: "short failure"}},
			wantErr: "short failure",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []wire.PullProgress
			err := decodePullStream(strings.NewReader(tt.stream), func(p wire.PullProgress) { got = append(got, p) })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("got error %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrDocker) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want ErrDocker mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestToWireEvent(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	got := toWireEvent(events.Message{
		Type:   events.ContainerEventType,
		Action: events.ActionDie,
		Actor: events.Actor{ID: "c1", Attributes: map[string]string{
			"exitCode": "137", "image": "img", "name": "ws",
			wire.LabelManaged: "true", wire.LabelWorkspaceID: "w-1",
		}},
		TimeNano: ts.UnixNano(),
	})
	want := wire.ContainerEvent{
		ContainerID: "c1", WorkspaceID: "w-1", Action: "die", ExitCode: 137, Time: ts,
		Labels: map[string]string{wire.LabelManaged: "true", wire.LabelWorkspaceID: "w-1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

func TestHumanStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		state container.State
		want  string
	}{
		{"running", container.State{Status: container.StateRunning, StartedAt: "2026-01-01T11:55:00Z"}, "Up 5 minutes"},
		{"exited", container.State{Status: container.StateExited, ExitCode: 137, FinishedAt: "2026-01-01T11:59:58Z"}, "Exited (137) 2 seconds ago"},
		{"created", container.State{Status: container.StateCreated, StartedAt: "0001-01-01T00:00:00Z"}, "Created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := humanStatus(&tt.state, parseDockerTime(tt.state.StartedAt), parseDockerTime(tt.state.FinishedAt), now)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
