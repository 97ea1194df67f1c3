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
	"berth/agent/internal/eventlog"
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
	events := eventlog.New()

	advertise := cfg.AdvertiseAddr
	if advertise == "" {
		advertise = cfg.Listen
	}
	meta := &metaPublisher{cfg: cfg, advertise: advertise, log: log, capacity: first, eventSeq: events.Seq(),
		wake: make(chan struct{}, 1)}
	pool, err := gossip.New(gossip.Config{
		Name: cfg.ServerID, BindAddr: cfg.GossipBind, AdvertiseAddr: cfg.GossipAdvertise,
		Key: cfg.GossipKey, Keys: cfg.GossipKeys, Label: cfg.ClusterLabel, Fast: true, PruneAfter: cfg.GossipPruneAfter,
	}, meta.announced(), log.Named("gossip"))
	if err != nil {
		return err
	}
	meta.pool = pool
	events.OnChange(meta.setEventSeq)
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
	api.EnableEventLog(events)
	log.Info("agent ready", "server_id", cfg.ServerID, "api", l.Addr().String(), "gossip", pool.LocalAddr(),
		"cores", first.CPUCores, "memory_mb", first.MemoryTotalMB, "disk_gb", int(first.DiskTotalGB), "version", version.Version)

	fc := fence.New(cfg.FenceLease, api.LastContact, func() int { return pool.NumAlive() - 1 }, dc, log.Named("fence"))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 7) // one per part: none blocks on exit
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
	part(func() error { return events.Run(ctx, dc, log.Named("events")) })
	part(func() error { return meta.run(ctx) })
	part(func() error {
		return sampler.Run(ctx, cfg.SampleInterval, func(c wire.Capacity) {
			latest.set(c)
			meta.setSample(c, false)
		}, func(err error) {
			if errors.Is(err, capacity.ErrDocker) {
				meta.setSample(wire.Capacity{}, true)
			}
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

// metaPublisher gossips the agent's metadata each time what it says
// changes: the capacity sample (rounded, see nodeMeta), whether the local
// dockerd answers, and the event log's latest number, which the scheduler
// follows to fetch new container events. Setters never block (the event
// log calls one from its goroutine); run publishes.
type metaPublisher struct {
	cfg       config.Config
	advertise string
	log       hclog.Logger
	pool      *gossip.Pool
	wake      chan struct{}

	mu         sync.Mutex
	capacity   wire.Capacity
	dockerDown bool
	eventSeq   uint64
	seq        uint64 // NodeMeta.Seq of the last published metadata
	published  wire.NodeMeta
}

// announced is the first metadata, which gossip.New announces; it counts
// as published.
func (p *metaPublisher) announced() wire.NodeMeta {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published = p.currentLocked()
	p.seq = p.published.Seq
	return p.published
}

func (p *metaPublisher) currentLocked() wire.NodeMeta {
	m := nodeMeta(p.cfg, p.advertise, p.capacity, p.seq+1)
	m.EventSeq, m.DockerDown = p.eventSeq, p.dockerDown
	return m
}

// setSample records a capacity sample, or (dockerDown) that dockerd did not
// answer the last one: the capacity gossiped stays the last measured.
func (p *metaPublisher) setSample(c wire.Capacity, dockerDown bool) {
	p.mu.Lock()
	if !dockerDown {
		p.capacity = c
	}
	p.dockerDown = dockerDown
	p.mu.Unlock()
	p.poke()
}

// setEventSeq records the event log's latest number (eventlog.Log.OnChange).
func (p *metaPublisher) setEventSeq(seq uint64) {
	p.mu.Lock()
	p.eventSeq = seq
	p.mu.Unlock()
	p.poke()
}

func (p *metaPublisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default: // a publication is pending; it will read the latest
	}
}

// run publishes after every change until ctx ends; changes that arrive
// while one is published are gossiped together.
func (p *metaPublisher) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		}
		p.mu.Lock()
		m := p.currentLocked()
		if m.SameCapacity(p.published) {
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		if err := p.pool.SetMeta(m); err != nil {
			p.log.Warn("gossip meta refresh failed", "error", err)
			continue
		}
		p.mu.Lock()
		p.seq, p.published = m.Seq, m
		p.mu.Unlock()
	}
}

type latestCapacity struct {
	mu sync.Mutex
	c  wire.Capacity
}

func (l *latestCapacity) get() wire.Capacity  { l.mu.Lock(); defer l.mu.Unlock(); return l.c }
func (l *latestCapacity) set(c wire.Capacity) { l.mu.Lock(); l.c = c; l.mu.Unlock() }
