package app

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/billing"
	"berth/scheduler/internal/config"
	"berth/scheduler/internal/health"
	"berth/scheduler/internal/metrics"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/podexapi"
	"berth/scheduler/internal/registry"
	"berth/shared/wire"
)

// peer is the podex API as a peer (package podexapi) and billing, wired
// when COMPUTE_API_BASE_URL is set. A nil *peer is berth alone: built-in
// tiers, no reverse calls, billing off.
type peer struct {
	client  *podexapi.Client
	status  *podexapi.StatusSync
	servers *podexapi.ServerSync
	catalog *podexapi.Catalog
	beats   *podexapi.Heartbeats
	billing *billing.Service
}

// newPeer builds the peer, or returns nil without an API. It writes
// nothing: start turns billing on or off in the registry.
func newPeer(cfg config.Config, db *registry.DB, tracker *health.Tracker,
	dialer *agentclient.Dialer, m *metrics.Metrics, log hclog.Logger) (*peer, error) {
	if cfg.APIBaseURL == "" {
		return nil, nil
	}
	pcfg := podexapi.DefaultConfig()
	pcfg.BaseURL, pcfg.Token, pcfg.Region = cfg.APIBaseURL, cfg.ServiceToken, cfg.Region
	pcfg.Timeout, pcfg.Attempts = cfg.APITimeout, cfg.APIAttempts
	pcfg.ServerSyncInterval, pcfg.HeartbeatInterval, pcfg.SpecsTTL = cfg.ServerSyncInterval, cfg.APIHeartbeatInterval, cfg.HardwareSpecsTTL
	client, err := podexapi.NewClient(pcfg, m, log.Named("podexapi"))
	if err != nil {
		return nil, err
	}
	bcfg := billing.Default()
	bcfg.Interval, bcfg.FlushInterval, bcfg.BatchSize, bcfg.Retention =
		cfg.BillingInterval, cfg.BillingFlushInterval, cfg.BillingBatch, cfg.BillingRetention
	bill, err := billing.New(bcfg, db, client, m, log.Named("billing"))
	if err != nil {
		return nil, err
	}
	m.WatchBilling(billingFigures{db})
	return &peer{
		client:  client,
		status:  podexapi.NewStatusSync(client),
		servers: podexapi.NewServerSync(client, db),
		catalog: podexapi.NewCatalog(client),
		beats:   podexapi.NewHeartbeats(client, db, tracker, agentMeasurer{dialer}),
		billing: bill,
	}, nil
}

// start turns billing on in the registry, or, without an API (p nil), off.
// It writes: on the leader only, in a replicated registry.
func (p *peer) start(ctx context.Context, db *registry.DB, log hclog.Logger) error {
	if p == nil {
		if n, err := db.StopBilling(ctx); err != nil {
			return err
		} else if n > 0 {
			log.Warn("billing off (no COMPUTE_API_BASE_URL): open intervals dropped", "count", n)
		}
		return nil
	}
	return p.billing.Start(ctx)
}

// notifier is the status sync, or nil.
func (p *peer) notifier() orchestrator.Notifier {
	if p == nil {
		return nil
	}
	return p.status
}

// tiers is the API's hardware specs, or nil (the built-in table).
func (p *peer) tiers() orchestrator.Catalog {
	if p == nil {
		return nil
	}
	return p.catalog
}

// loops are the peer's background loops, by name.
func (p *peer) loops() map[string]func(context.Context) error {
	if p == nil {
		return nil
	}
	return map[string]func(context.Context) error{
		"podexapi.status":     p.status.Run,
		"podexapi.servers":    p.servers.Run,
		"podexapi.specs":      p.catalog.Run,
		"podexapi.heartbeats": p.beats.Run,
		"billing":             p.billing.Run,
	}
}

// agentMeasurer asks a server's agent for its capacity (podexapi.Measurer).
type agentMeasurer struct{ d *agentclient.Dialer }

func (m agentMeasurer) Capacity(ctx context.Context, s registry.Server) (wire.Capacity, error) {
	return m.d.Client(s.ID, orchestrator.AgentAddr(s)).Capacity(ctx)
}

// billingFigures reads the billing gauges from the registry.
type billingFigures struct{ db *registry.DB }

func (b billingFigures) BillingFigures(ctx context.Context) (metrics.BillingFigures, error) {
	s, err := b.db.BillingSummary(ctx)
	if err != nil {
		return metrics.BillingFigures{}, err
	}
	return metrics.BillingFigures{OpenIntervals: s.OpenIntervals, Pending: s.Pending, PendingSeconds: s.PendingSeconds,
		Failing: s.Failing}, nil
}

// billingView is what the admin views read of billing, or nil when off.
func (p *peer) billingView(db *registry.DB) admin.Billing {
	if p == nil {
		return nil
	}
	return db
}
