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

// Raft is a scheduler's raft node as /metrics shows it (high
// availability).
type Raft interface {
	// RaftFigures: this node's state (Leader, Follower, Candidate,
	// Shutdown), the leader's id ("" when none), term, commit and applied
	// index, and the voters of the configuration.
	RaftFigures() (state, leader string, term, commit, applied uint64, voters int)
}

// WatchRaft registers the raft gauges read from r at scrape time.
func (m *Metrics) WatchRaft(r Raft) { m.reg.MustRegister(&raftCollector{r: r}) }

var (
	raftStateDesc   = prometheus.NewDesc("berth_raft_state", "1 for this scheduler's raft state.", []string{"state"}, nil)
	raftLeaderDesc  = prometheus.NewDesc("berth_raft_leader", "1 for the scheduler this one knows as the raft leader.", []string{"id"}, nil)
	raftTermDesc    = prometheus.NewDesc("berth_raft_term", "This scheduler's raft term.", nil, nil)
	raftCommitDesc  = prometheus.NewDesc("berth_raft_commit_index", "The raft log index this scheduler knows committed.", nil, nil)
	raftAppliedDesc = prometheus.NewDesc("berth_raft_applied_index", "The raft log index applied to this scheduler's registry.", nil, nil)
	raftVotersDesc  = prometheus.NewDesc("berth_raft_voters", "Voters in the raft configuration.", nil, nil)
)

type raftCollector struct{ r Raft }

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{raftStateDesc, raftLeaderDesc, raftTermDesc, raftCommitDesc, raftAppliedDesc, raftVotersDesc} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	state, leader, term, commit, applied, voters := c.r.RaftFigures()
	ch <- prometheus.MustNewConstMetric(raftStateDesc, prometheus.GaugeValue, 1, state)
	if leader != "" {
		ch <- prometheus.MustNewConstMetric(raftLeaderDesc, prometheus.GaugeValue, 1, leader)
	}
	ch <- prometheus.MustNewConstMetric(raftTermDesc, prometheus.GaugeValue, float64(term))
	ch <- prometheus.MustNewConstMetric(raftCommitDesc, prometheus.GaugeValue, float64(commit))
	ch <- prometheus.MustNewConstMetric(raftAppliedDesc, prometheus.GaugeValue, float64(applied))
	ch <- prometheus.MustNewConstMetric(raftVotersDesc, prometheus.GaugeValue, float64(voters))
}
