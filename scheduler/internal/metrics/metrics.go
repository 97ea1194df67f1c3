package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"net/http"
)

// Metrics holds the scheduler's instruments. The zero value is unusable;
// use New. Safe for concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	placements *prometheus.CounterVec
	placeTime  prometheus.Histogram
	agentCalls *prometheus.HistogramVec
	peer       *peerMetrics // podex.go
}

// New registers the instruments and the Go runtime collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		placements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_placements_total", Help: "Workspace placements by result and strategy.",
		}, []string{"result", "strategy"}),
		placeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_placement_duration_seconds", Help: "Time to decide a placement (snapshot and scoring).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		agentCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_agent_request_duration_seconds", Help: "Scheduler calls to agents by operation and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"op", "outcome"}),
	}
	m.reg.MustRegister(m.placements, m.placeTime, m.agentCalls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.peer = newPeerMetrics(m.reg)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Placement records one placement decision.
func (m *Metrics) Placement(result, strategy string, took time.Duration) {
	m.placements.WithLabelValues(result, strategy).Inc()
	m.placeTime.Observe(took.Seconds())
}

// AgentCall records one call to an agent.
func (m *Metrics) AgentCall(op string, err error, took time.Duration) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.agentCalls.WithLabelValues(op, outcome).Observe(took.Seconds())
}

// State is read at every scrape.
type State interface {
	WorkspacesByStatus(ctx context.Context) (map[string]int, error)
	ServerHealth(ctx context.Context) (map[string]string, error) // server id → health
	GossipMembers() map[string]int                               // state → count
}

// Watch registers gauges read from s at scrape time.
func (m *Metrics) Watch(s State) {
	m.reg.MustRegister(&stateCollector{s: s})
}

var (
	workspacesDesc = prometheus.NewDesc("berth_workspaces", "Workspaces by status.", []string{"status"}, nil)
	healthDesc     = prometheus.NewDesc("berth_server_health", "1 for the server's current health state.", []string{"server", "health"}, nil)
	membersDesc    = prometheus.NewDesc("berth_gossip_members", "Gossip members by state.", []string{"state"}, nil)
)

type stateCollector struct{ s State }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workspacesDesc
	ch <- healthDesc
	ch <- membersDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if byStatus, err := c.s.WorkspacesByStatus(ctx); err == nil {
		for status, n := range byStatus {
			ch <- prometheus.MustNewConstMetric(workspacesDesc, prometheus.GaugeValue, float64(n), status)
		}
	}
	if health, err := c.s.ServerHealth(ctx); err == nil {
		for id, h := range health {
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, 1, id, h)
		}
	}
	for state, n := range c.s.GossipMembers() {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), state)
	}
}
