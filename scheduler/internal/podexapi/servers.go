package podexapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/registry"
)

// ServerRecord is a podex WorkspaceServer as the API's server list gives it
// (§7: id, hostname, ip_address, docker_port, architecture, region, TLS
// paths, images), which is also the shape of COMPUTE_WORKSPACE_SERVERS, with
// berth's own fields beside (agent_port, labels, capacity overrides, GPU).
// docker_port is taken as the agent port when agent_port is not given, so
// the podex seed and the API's records work unchanged: in a berth
// deployment they carry the agent's port (7443).
type ServerRecord struct {
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

// DefaultAgentPort is the port of a record that names none.
const DefaultAgentPort = 7443

// Server is the registry's server for the record: the agent port is
// agent_port, else docker_port, else DefaultAgentPort; a missing hostname
// or IP address is the other one. A record without an id is an error.
func (r ServerRecord) Server() (registry.Server, error) {
	if r.ID == "" {
		return registry.Server{}, errors.New("server record without an id")
	}
	port := r.AgentPort
	if port == 0 {
		port = r.DockerPort
	}
	if port == 0 {
		port = DefaultAgentPort
	}
	host, ip := r.Hostname, r.IPAddress
	if host == "" {
		host = ip
	}
	if ip == "" {
		ip = host
	}
	return registry.Server{
		ID: r.ID, Name: r.Name, Hostname: host, IPAddress: ip, AgentPort: port,
		Architecture: r.Architecture, Region: r.Region, Labels: r.Labels,
		TLSCertPath: r.TLSCertPath, TLSKeyPath: r.TLSKeyPath, TLSCAPath: r.TLSCAPath,
		TotalCPU: r.TotalCPU, TotalMemoryMB: r.TotalMemoryMB, TotalDiskGB: r.TotalDiskGB,
		TotalBandwidthMbps: r.TotalBandwidthMbps, MaxWorkspaces: r.MaxWorkspaces,
		GPUType: r.GPUType, GPUCount: r.GPUCount,
		WorkspaceImage: r.WorkspaceImage, WorkspaceImageARM64: r.WorkspaceImageARM64,
		WorkspaceImageAMD64: r.WorkspaceImageAMD64, WorkspaceImageGPU: r.WorkspaceImageGPU,
	}, nil
}

// ListServers is GET /api/servers/internal/list[?region=] (service token):
// the servers the API has as active.
func (c *Client) ListServers(ctx context.Context, region string) ([]ServerRecord, error) {
	var q url.Values
	if region != "" {
		q = url.Values{"region": {region}}
	}
	var out []ServerRecord
	err := c.do(ctx, call{op: "servers.list", method: http.MethodGet, path: "/api/servers/internal/list",
		query: q, auth: serviceToken, out: &out})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ServerRegistry is where ServerSync writes.
type ServerRegistry interface {
	SyncAPIServers(ctx context.Context, listed []registry.Server, at time.Time) (registry.APISync, error)
}

// ServerSync upserts the API's server list into the registry at start and
// every Config.ServerSyncInterval (registry.SyncAPIServers: new servers are
// registered, a server the list no longer names is cordoned, never
// deleted). A list that cannot be had leaves the registry as it is (the
// Python service took it as an empty list). Run owns its loop.
type ServerSync struct {
	c   *Client
	reg ServerRegistry
	log hclog.Logger
}

// NewServerSync returns the server sync over c.
func NewServerSync(c *Client, reg ServerRegistry) *ServerSync {
	return &ServerSync{c: c, reg: reg, log: c.log.Named("servers")}
}

// Once fetches the list and applies it.
func (s *ServerSync) Once(ctx context.Context) (registry.APISync, error) {
	records, err := s.c.ListServers(ctx, s.c.cfg.Region)
	if err != nil {
		return registry.APISync{}, err
	}
	listed := make([]registry.Server, 0, len(records))
	for i, r := range records {
		srv, err := r.Server()
		if err != nil {
			s.log.Warn("server list: entry skipped", "index", i, "error", err)
			continue
		}
		listed = append(listed, srv)
	}
	res, err := s.reg.SyncAPIServers(ctx, listed, time.Now())
	if err != nil {
		return registry.APISync{}, fmt.Errorf("apply server list: %w", err)
	}
	if res.Changed() {
		s.log.Info("server list applied", "listed", len(listed), "added", res.Added, "updated", res.Updated,
			"cordoned", res.Cordoned, "reactivated", res.Reactivated)
	}
	return res, nil
}

// Run syncs at once, then every interval, until ctx ends.
func (s *ServerSync) Run(ctx context.Context) error {
	t := time.NewTicker(s.c.cfg.ServerSyncInterval)
	defer t.Stop()
	for {
		if _, err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("server sync failed; registry unchanged", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
