package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/agent/internal/capacity"
	"berth/agent/internal/config"
	"berth/agent/internal/docker"
	"berth/agent/internal/fence"
	"berth/agent/internal/homes"
	"berth/agent/internal/server"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/version"
	"berth/shared/wire"
)

// run wires the agent's parts together and blocks until ctx ends or a part
// fails: Docker adapter → capacity sampler → gossip (meta refreshed on every
// change) and the mTLS API.
func run(ctx context.Context, cfg config.Config, log hclog.Logger) error {
	// Certificate, key, CA bundle and revocation list are re-read when
	// their files change (mtls.DefaultCheckInterval).
	id, err := mtls.Load(mtls.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, CRL: cfg.TLSCRL, Log: log.Named("tls")})
	if err != nil {
		return err
	}
	// The scheduler calls every route; peer agents only fetch home archives.
	clientRoles := []string{wire.RoleScheduler, wire.RoleAgent}
	tlsConfig := id.ServerConfig(clientRoles...)
	peerTLS := id.ClientConfig(wire.RoleAgent)
	dc, err := docker.New(ctx, docker.Options{Host: cfg.DockerHost, DataDir: cfg.DataDir, ServerID: cfg.ServerID}, log.Named("docker"))
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	info, err := dc.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	if _, err := dc.ProbeSandbox(ctx, docker.SandboxOptions{
		Egress: cfg.Egress, DiskQuota: cfg.DiskQuota == "loop", RunscState: cfg.RunscState,
	}); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	sampler := capacity.NewSampler(capacity.Options{
		ServerID: cfg.ServerID, DataRoot: info.DataRoot, GPUType: cfg.GPUType, GPUCount: cfg.GPUCount,
	}, dc, log.Named("capacity"))
	first, err := sampler.Sample(ctx)
	if err != nil {
		return fmt.Errorf("first capacity sample: %w", err)
	}
	latest := &latestCapacity{c: first}

	advertise := cfg.AdvertiseAddr
	if advertise == "" {
		advertise = cfg.Listen
	}
	pool, err := gossip.New(gossip.Config{
		Name: cfg.ServerID, BindAddr: cfg.GossipBind, AdvertiseAddr: cfg.GossipAdvertise,
		Key: cfg.GossipKey, Keys: cfg.GossipKeys, Label: cfg.ClusterLabel, Fast: true, PruneAfter: cfg.GossipPruneAfter,
	}, nodeMeta(cfg, advertise, first, 0), log.Named("gossip"))
	if err != nil {
		return err
	}
	defer func() {
		if err := pool.Leave(2 * time.Second); err != nil {
			log.Warn("gossip leave", "error", err)
		}
	}()

	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	api := server.New(cfg.ServerID, dc, latest.get, server.StreamConfig{
		WriteTimeout: cfg.StreamWriteTimeout, ProxyMaxConns: cfg.ProxyMaxConns,
		ProxyResponseHeaderTimeout: cfg.ProxyHeaderTimeout, ProxyIdleTimeout: cfg.ProxyIdleTimeout,
		HTTP: cfg.HTTP,
	}, log.Named("api"))
	api.CheckPeers(func(certs []*x509.Certificate) error { return id.CheckPeer(certs, clientRoles...) })
	api.EnableHomes(server.Homes{DataDir: dc.DataDir(), Service: homes.NewService(peerTLS)})
	log.Info("agent ready", "server_id", cfg.ServerID, "api", l.Addr().String(), "gossip", pool.LocalAddr(),
		"cores", first.CPUCores, "memory_mb", first.MemoryTotalMB, "disk_gb", int(first.DiskTotalGB), "version", version.Version)

	fc := fence.New(cfg.FenceLease, api.LastContact, func() int { return pool.NumAlive() - 1 }, dc, log.Named("fence"))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5) // one per part: none blocks on exit
	// Every part runs until ctx ends; run returns only once all have
	// stopped (the deferred Leave then announces the departure).
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	part := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- fn()
		}()
	}
	part(func() error { return api.Serve(ctx, l, tlsConfig) })
	part(func() error { return fc.Run(ctx) })
	part(func() error { pool.JoinRetry(ctx, cfg.Join); <-ctx.Done(); return nil })
	if cfg.GossipKeyFile != "" { // keyring rotation without a restart
		part(func() error { pool.WatchKeyFile(ctx, cfg.GossipKeyFile, time.Second); return nil })
	}
	var seq uint64
	prev := nodeMeta(cfg, advertise, first, 0)
	part(func() error {
		return sampler.Run(ctx, cfg.SampleInterval, func(c wire.Capacity) {
			latest.set(c)
			meta := nodeMeta(cfg, advertise, c, seq+1)
			if meta.SameCapacity(prev) {
				return
			}
			seq++
			if err := pool.SetMeta(meta); err != nil {
				log.Warn("gossip meta refresh failed", "error", err)
				return
			}
			prev = meta
		})
	})
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if ctx.Err() != nil || errors.Is(err, context.Canceled) || err == nil {
			return nil
		}
		return err
	}
}

// nodeMeta is what the agent gossips. CPU use is rounded to 5 % and free
// memory to 64 MB, so the pool hears of real changes, not of noise.
func nodeMeta(cfg config.Config, advertise string, c wire.Capacity, seq uint64) wire.NodeMeta {
	return wire.NodeMeta{
		Role: wire.NodeRoleAgent, ServerID: cfg.ServerID, AgentAddr: advertise, Region: cfg.Region,
		Labels: cfg.Labels, Architecture: c.Architecture,
		CPUMilli: int64(c.CPUCores) * 1000, CPUUsedPct: 5 * int64((c.CPUPercent+2.5)/5),
		MemTotalMB: c.MemoryTotalMB, MemFreeMB: c.MemoryAvailableMB / 64 * 64,
		DiskTotalGB: int64(c.DiskTotalGB), DiskFreeGB: int64(c.DiskFreeGB),
		Workspaces: c.Workspaces, GPUType: c.GPUType, GPUCount: c.GPUCount,
		Version: version.Version, Seq: seq,
	}
}

type latestCapacity struct {
	mu sync.Mutex
	c  wire.Capacity
}

func (l *latestCapacity) get() wire.Capacity  { l.mu.Lock(); defer l.mu.Unlock(); return l.c }
func (l *latestCapacity) set(c wire.Capacity) { l.mu.Lock(); l.c = c; l.mu.Unlock() }
