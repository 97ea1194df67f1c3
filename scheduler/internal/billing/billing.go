package billing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth/scheduler/internal/podexapi"
	"berth/scheduler/internal/registry"
)

// Config are the settings of billing.
type Config struct {
	Interval      time.Duration // BERTH_BILLING_INTERVAL: an open interval is closed when it is this long
	Tick          time.Duration // how often intervals are checked against Interval
	FlushInterval time.Duration // BERTH_BILLING_FLUSH_INTERVAL: the outbox is sent at least this often
	BatchSize     int           // BERTH_BILLING_BATCH: events per request
	RetryBase     time.Duration // the wait before a failed event is sent again; doubles per failure
	RetryMax      time.Duration // the longest such wait
	Retention     time.Duration // BERTH_BILLING_RETENTION: acknowledged events are kept this long
}

// Default returns the settings berth bills with unless told otherwise.
func Default() Config {
	return Config{Interval: time.Minute, Tick: time.Second, FlushInterval: 5 * time.Second, BatchSize: 50,
		RetryBase: 2 * time.Second, RetryMax: 5 * time.Minute, Retention: 24 * time.Hour}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < time.Second {
		errs = append(errs, fmt.Errorf("billing interval %s: at least 1s (usage is counted in whole seconds)", c.Interval))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("billing batch size %d: at least 1", c.BatchSize))
	}
	for name, d := range map[string]time.Duration{"tick": c.Tick, "flush interval": c.FlushInterval,
		"retry base": c.RetryBase, "retry max": c.RetryMax, "retention": c.Retention} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("billing %s must be positive, got %s", name, d))
		}
	}
	return errors.Join(errs...)
}

// Registry is the registry's billing half.
type Registry interface {
	StartBilling(ctx context.Context, at time.Time) (opened, closed int, err error)
	CloseDueIntervals(ctx context.Context, at time.Time, length time.Duration) (int, error)
	DueUsage(ctx context.Context, at time.Time, limit int) ([]registry.UsageRecord, error)
	MarkUsageSent(ctx context.Context, seqs []int64, at time.Time) error
	MarkUsageFailed(ctx context.Context, seqs []int64, why string, next time.Time, solo bool) error
	PruneUsage(ctx context.Context, before time.Time) (int64, error)
}

// Recorder takes usage events (podexapi.Client).
type Recorder interface {
	RecordUsage(ctx context.Context, events []podexapi.UsageEvent) error
}

// Observer hears of events the API acknowledged (metrics).
type Observer interface {
	UsageSent(events int, seconds int64)
}

// Service closes the intervals that reach their length and sends the
// outbox. It owns no state: marks and outbox are the registry's, so a
// Service may die at any instant and the next one goes on from the file.
// Run owns its loop; Flush may also be called from elsewhere (it is safe
// for concurrent use: a row is only ever marked sent once, and a row sent
// twice is counted once by the API).
type Service struct {
	cfg    Config
	reg    Registry
	rec    Recorder
	obs    Observer
	log    hclog.Logger
	jitter func() float64
}

// New returns the service; obs may be nil.
func New(cfg Config, reg Registry, rec Recorder, obs Observer, log hclog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Service{cfg: cfg, reg: reg, rec: rec, obs: obs, log: log, jitter: rand.Float64}, nil
}

// Start turns billing on in the registry: the marks of running workspaces
// carry on (after a restart, from where the last process left them) and
// running workspaces without one start being billed now. Call it before
// the scheduler serves.
func (s *Service) Start(ctx context.Context) error {
	opened, closed, err := s.reg.StartBilling(ctx, time.Now())
	if err != nil {
		return err
	}
	s.log.Info("billing on", "interval", s.cfg.Interval, "opened", opened, "closed", closed)
	return nil
}

// pruneEvery is how often acknowledged events older than the retention are
// deleted.
const pruneEvery = time.Hour

// Run closes due intervals every Tick, sends the outbox every
// FlushInterval (and at once when intervals were closed), and prunes,
// until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	flush := time.NewTicker(s.cfg.FlushInterval)
	defer flush.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			n, err := s.reg.CloseDueIntervals(ctx, time.Now(), s.cfg.Interval)
			if err != nil {
				s.log.Warn("close billing intervals", "error", err)
			}
			if n > 0 {
				s.flushLogged(ctx)
			}
		case <-flush.C:
			s.flushLogged(ctx)
		case <-prune.C:
			if n, err := s.reg.PruneUsage(ctx, time.Now().Add(-s.cfg.Retention)); err != nil {
				s.log.Warn("prune usage", "error", err)
			} else if n > 0 {
				s.log.Debug("pruned acknowledged usage events", "count", n)
			}
		}
	}
}

func (s *Service) flushLogged(ctx context.Context) {
	if _, err := s.Flush(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("usage records not sent; will retry with the same ids", "error", err)
	}
}

// Flush sends the due outbox rows in batches, oldest first, until none is
// due, and returns how many the API acknowledged. A batch the API refuses
// (4xx) is retried later one event per request, so one bad event holds up
// only itself; when the API cannot be reached the flush stops and the rows
// wait for their next attempt (backoff with jitter). Every retry sends the
// same event ids.
func (s *Service) Flush(ctx context.Context) (int, error) {
	sent := 0
	started := time.Now() // a row that fails in this flush is due again only after it
	for ctx.Err() == nil {
		due, err := s.reg.DueUsage(ctx, started, s.cfg.BatchSize)
		if err != nil {
			return sent, err
		}
		batch := pick(due, s.cfg.BatchSize)
		if len(batch) == 0 {
			return sent, nil
		}
		events, seqs, secs := make([]podexapi.UsageEvent, len(batch)), make([]int64, len(batch)), int64(0)
		for i, u := range batch {
			events[i] = Event(u)
			seqs[i] = u.Seq
			secs += u.Seconds
		}
		err = s.rec.RecordUsage(ctx, events)
		if err == nil {
			if err := s.reg.MarkUsageSent(ctx, seqs, time.Now()); err != nil {
				return sent, err
			}
			sent += len(batch)
			if s.obs != nil {
				s.obs.UsageSent(len(batch), secs)
			}
			continue
		}
		rejected := errors.Is(err, podexapi.ErrRejected)
		next := time.Now().Add(s.retryIn(batch[0].Attempts + 1))
		if merr := s.reg.MarkUsageFailed(ctx, seqs, err.Error(), next, rejected && len(batch) > 1); merr != nil {
			return sent, errors.Join(err, merr)
		}
		if !rejected {
			return sent, err // the API is unavailable: the rest waits too
		}
		s.log.Warn("usage records refused; each will be sent alone", "events", len(batch), "error", err)
	}
	return sent, ctx.Err()
}

// pick is the next batch: the first row alone when it must go alone, else
// the rows up to the first that must go alone, at most n.
func pick(due []registry.UsageRecord, n int) []registry.UsageRecord {
	if len(due) == 0 {
		return nil
	}
	if due[0].Solo {
		return due[:1]
	}
	end := 0
	for end < len(due) && end < n && !due[end].Solo {
		end++
	}
	return due[:end]
}

// retryIn is the wait after a row's n-th failure: RetryBase doubled n-1
// times, at most RetryMax, plus up to 50 % jitter.
func (s *Service) retryIn(n int) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	return d + time.Duration(s.jitter()*0.5*float64(d))
}

// Event is the usage event of an outbox row: compute_seconds of its tier,
// with its container and server, created at the end of its interval.
func Event(u registry.UsageRecord) podexapi.UsageEvent {
	return podexapi.ComputeEvent(u.EventID, u.UserID, u.SessionID, u.WorkspaceID, u.Tier, u.ServerID, u.ContainerID,
		u.Seconds, u.End)
}
