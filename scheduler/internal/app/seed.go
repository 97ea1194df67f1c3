package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"berth/scheduler/internal/registry"
)

// seedServer is one entry of COMPUTE_WORKSPACE_SERVERS: the podex seed's
// WorkspaceServer fields (contract §7) plus berth's. docker_port is accepted
// as the agent port, so the podex seed works unchanged.
type seedServer struct {
	ID                  string            `json:"id"`
	Name                string            `json:"name"`
	Hostname            string            `json:"hostname"`
	IPAddress           string            `json:"ip_address"`
	AgentPort           int               `json:"agent_port"`
	DockerPort          int               `json:"docker_port"`
	Architecture        string            `json:"architecture"`
	Region              string            `json:"region"`
	Labels              map[string]string `json:"labels"`
	TLSCertPath         string            `json:"tls_cert_path"`
	TLSKeyPath          string            `json:"tls_key_path"`
	TLSCAPath           string            `json:"tls_ca_path"`
	TotalCPU            float64           `json:"total_cpu"`
	TotalMemoryMB       int64             `json:"total_memory_mb"`
	TotalDiskGB         int64             `json:"total_disk_gb"`
	TotalBandwidthMbps  int64             `json:"total_bandwidth_mbps"`
	MaxWorkspaces       int               `json:"max_workspaces"`
	GPUType             string            `json:"gpu_type"`
	GPUCount            int               `json:"gpu_count"`
	WorkspaceImage      string            `json:"workspace_image"`
	WorkspaceImageARM64 string            `json:"workspace_image_arm64"`
	WorkspaceImageAMD64 string            `json:"workspace_image_amd64"`
	WorkspaceImageGPU   string            `json:"workspace_image_gpu"`
}

// parseSeed reads the JSON list; an empty string is no servers.
func parseSeed(raw string) ([]registry.Server, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var in []seedServer
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		return nil, fmt.Errorf("COMPUTE_WORKSPACE_SERVERS: %w", err)
	}
	out := make([]registry.Server, 0, len(in))
	for i, s := range in {
		if s.ID == "" {
			return nil, fmt.Errorf("COMPUTE_WORKSPACE_SERVERS[%d]: id is required", i)
		}
		port := s.AgentPort
		if port == 0 {
			port = s.DockerPort
		}
		if port == 0 {
			port = 7443
		}
		host := s.Hostname
		if host == "" {
			host = s.IPAddress
		}
		ip := s.IPAddress
		if ip == "" {
			ip = host
		}
		out = append(out, registry.Server{
			ID: s.ID, Name: s.Name, Hostname: host, IPAddress: ip, AgentPort: port,
			Architecture: s.Architecture, Region: s.Region, Labels: s.Labels,
			TLSCertPath: s.TLSCertPath, TLSKeyPath: s.TLSKeyPath, TLSCAPath: s.TLSCAPath,
			TotalCPU: s.TotalCPU, TotalMemoryMB: s.TotalMemoryMB, TotalDiskGB: s.TotalDiskGB,
			TotalBandwidthMbps: s.TotalBandwidthMbps, MaxWorkspaces: s.MaxWorkspaces,
			GPUType: s.GPUType, GPUCount: s.GPUCount,
			WorkspaceImage: s.WorkspaceImage, WorkspaceImageARM64: s.WorkspaceImageARM64,
			WorkspaceImageAMD64: s.WorkspaceImageAMD64, WorkspaceImageGPU: s.WorkspaceImageGPU,
		})
	}
	return out, nil
}

func seedServers(ctx context.Context, db *registry.DB, raw string) (int, error) {
	servers, err := parseSeed(raw)
	if err != nil {
		return 0, err
	}
	for _, s := range servers {
		if _, err := db.UpsertServer(ctx, s); err != nil {
			return 0, fmt.Errorf("register server %s: %w", s.ID, err)
		}
	}
	return len(servers), nil
}
