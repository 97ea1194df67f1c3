package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// peerMetrics are the instruments of the podex API peer and of billing.
type peerMetrics struct {
	calls        *prometheus.CounterVec
	callTime     *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	usageEvents  prometheus.Counter
	usageSeconds prometheus.Counter
}

func newPeerMetrics(reg *prometheus.Registry) *peerMetrics {
	p := &peerMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_podex_api_requests_total", Help: "Calls to the podex API by operation and outcome (ok, not_found, rejected, unavailable), retries included.",
		}, []string{"op", "outcome"}),
		callTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_podex_api_request_duration_seconds", Help: "Time of a call to the podex API, all its tries.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_podex_api_retries_total", Help: "Tries of podex API calls after the first.",
		}, []string{"op"}),
		usageEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_billing_events_sent_total", Help: "Usage events the podex API acknowledged.",
		}),
		usageSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_billing_seconds_sent_total", Help: "Compute seconds the podex API acknowledged.",
		}),
	}
	reg.MustRegister(p.calls, p.callTime, p.retries, p.usageEvents, p.usageSeconds)
	return p
}

// PodexCall records one call to the podex API (podexapi.Observer).
func (m *Metrics) PodexCall(op, outcome string, tries int, took time.Duration) {
	m.peer.calls.WithLabelValues(op, outcome).Inc()
	m.peer.callTime.WithLabelValues(op).Observe(took.Seconds())
	if tries > 1 {
		m.peer.retries.WithLabelValues(op).Add(float64(tries - 1))
	}
}

// UsageSent records usage events the API acknowledged (billing.Observer).
func (m *Metrics) UsageSent(events int, seconds int64) {
	m.peer.usageEvents.Add(float64(events))
	m.peer.usageSeconds.Add(float64(seconds))
}

// BillingFigures are the billing gauges.
type BillingFigures struct {
	OpenIntervals  int   // running workspaces being billed
	Pending        int   // outbox depth: events not yet acknowledged
	PendingSeconds int64 // the seconds they carry
	Failing        int   // pending events that failed at least once
}

// BillingState is read at every scrape.
type BillingState interface {
	BillingFigures(ctx context.Context) (BillingFigures, error)
}

// WatchBilling registers the billing gauges, read from b at scrape time.
func (m *Metrics) WatchBilling(b BillingState) {
	m.reg.MustRegister(&billingCollector{b: b})
}

var (
	openDesc     = prometheus.NewDesc("berth_billing_open_intervals", "Running workspaces with an open billing interval.", nil, nil)
	pendingDesc  = prometheus.NewDesc("berth_billing_outbox_pending", "Usage events in the outbox not yet acknowledged by the podex API.", nil, nil)
	pendingSDesc = prometheus.NewDesc("berth_billing_outbox_pending_seconds", "Compute seconds in the outbox not yet acknowledged.", nil, nil)
	failingDesc  = prometheus.NewDesc("berth_billing_outbox_failing", "Pending usage events that failed to send at least once.", nil, nil)
)

type billingCollector struct{ b BillingState }

func (c *billingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- openDesc
	ch <- pendingDesc
	ch <- pendingSDesc
	ch <- failingDesc
}

func (c *billingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.b.BillingFigures(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(f.OpenIntervals))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(f.Pending))
	ch <- prometheus.MustNewConstMetric(pendingSDesc, prometheus.GaugeValue, float64(f.PendingSeconds))
	ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, float64(f.Failing))
}
