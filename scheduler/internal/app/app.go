package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/computeapi"
	"berth/scheduler/internal/config"
	"berth/scheduler/internal/gitsetup"
	"berth/scheduler/internal/health"
	"berth/scheduler/internal/metrics"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/secretbox"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/version"
	"berth/shared/wire"
)

// App is a wired scheduler. Build it with New, then Run it; tests and
// benchmarks may serve Handler themselves.
type App struct {
	cfg     config.Config
	log     hclog.Logger
	db      *registry.DB
	pool    *gossip.Pool // nil when gossip is off
	tracker *health.Tracker
	watcher *health.Watcher
	peer    *peer // the podex API peer and billing; nil when COMPUTE_API_BASE_URL is unset (podex.go)
	orch    *orchestrator.Orchestrator
	git     *gitsetup.Service // nil with BERTH_GIT_ENV
	metrics *metrics.Metrics
	compute *computeapi.API
	echo    *echo.Echo
	loops   sync.WaitGroup // the Background loops
	failed  chan error     // the first loop that ended with an error while it should have run on
}

// New opens the registry, registers the seed servers, joins nothing yet,
// and builds the HTTP routes.
func New(ctx context.Context, cfg config.Config, log hclog.Logger) (*App, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	db, err := registry.Open(ctx, cfg.DBPath(), log)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, db: db, failed: make(chan error, 1)}
	if err := a.build(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	key, err := secretbox.LoadOrCreateKey(cfg.SecretsKeyPath())
	if err != nil {
		return err
	}
	box, err := secretbox.New(key)
	if err != nil {
		return err
	}
	a.db.SealCredentials(box) // git credentials never in the SQLite file in clear
	n, err := seedServers(ctx, a.db, cfg.WorkspaceServers)
	if err != nil {
		return err
	}
	log.Info("registry open", "path", cfg.DBPath(), "seeded_servers", n)

	var members orchestrator.Members
	var healthPool health.Pool
	if len(cfg.GossipKey) > 0 {
		a.pool, err = gossip.New(gossip.Config{
			Name: "scheduler", BindAddr: cfg.GossipBind, AdvertiseAddr: cfg.GossipAdvertise,
			Key: cfg.GossipKey, Label: cfg.ClusterLabel, Fast: true,
		}, wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler", Version: version.Version}, log.Named("gossip"))
		if err != nil {
			return err
		}
		members, healthPool = a.pool, a.pool
	} else {
		log.Warn("gossip disabled: no gossip key configured (BERTH_GOSSIP_KEY_FILE)")
	}

	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA})
	if err != nil {
		return err
	}
	a.metrics = metrics.New()
	dialer.Observe(a.metrics.AgentCall)
	a.tracker = health.New(a.db, dialer, healthPool, orchestrator.AgentAddr, health.DefaultOptions(), log.Named("health"))
	if a.peer, err = newPeer(ctx, cfg, a.db, a.tracker, dialer, a.metrics, log); err != nil {
		return err
	}
	ocfg := orchestrator.Default()
	ocfg.Strategy, ocfg.ClusterID, ocfg.CPUOvercommit = placement.ParseStrategy(cfg.Strategy), cfg.ClusterID, cfg.CPUOvercommit
	ocfg.WorkspaceImage, ocfg.Runtime = cfg.WorkspaceImage, cfg.DockerRuntime
	ocfg.ReconcileInterval, ocfg.OrphanGrace, ocfg.LostGrace = cfg.ReconcileInterval, cfg.OrphanGrace, cfg.ServerLostGrace
	ocfg.HomeMoveTimeout = cfg.HomeMoveTimeout
	ocfg.IdleTimeout, ocfg.IdleCPUPercent = cfg.IdleTimeout, cfg.IdleCPUPercent
	ocfg.GitEnv = cfg.GitEnv
	var gitSetup orchestrator.GitSetup // none when the image clones by itself from GIT_* variables
	if !cfg.GitEnv {
		a.git, err = gitsetup.New(gitsetup.Config{Timeout: cfg.GitSetupTimeout, Workers: cfg.GitSetupWorkers}, a.db, log.Named("gitsetup"))
		if err != nil {
			return err
		}
		gitSetup = a.git
	}
	a.orch, err = orchestrator.New(ocfg, orchestrator.Deps{
		DB: a.db, Agents: dialer, Members: members, Health: a.tracker, Down: a.tracker, Notifier: a.peer.notifier(),
		Tiers:    a.peer.tiers(),
		Observer: a.metrics, Log: log.Named("orchestrator"), GitSetup: gitSetup,
	})
	if err != nil {
		return err
	}
	a.watcher = health.NewWatcher(a.db, dialer, a.orch, orchestrator.AgentAddr, log.Named("events"))

	a.metrics.Watch(stateView{a})
	a.echo = newEcho()
	if len(cfg.CORSOrigins) > 0 { // contract §1.3
		a.echo.Use(middleware.CORSWithConfig(middleware.CORSConfig{AllowOrigins: cfg.CORSOrigins, AllowCredentials: true}))
	}
	a.echo.GET("/metrics", echo.WrapHandler(a.metrics.Handler()))
	a.compute = computeapi.New(computeapi.Deps{Workspaces: a.orch, ServiceToken: cfg.ServiceToken, Log: log.Named("compute"), Version: version.Version,
		FileLimit: cfg.FileLimit})
	a.compute.Register(a.echo)
	admin.New(admin.Deps{Token: cfg.AdminToken, ServiceToken: cfg.ServiceToken, Registry: a.db, Fleet: a.orch,
		Agents: dialer, Members: healthPool, Billing: a.peer.billingView(a.db), Log: log.Named("admin")}).Register(a.echo)
	return nil
}

// Handler serves every route.
func (a *App) Handler() http.Handler { return a.echo }

// Background starts the loops (gossip join, health, reconciliation and
// cleanup, event streams, podex API) until ctx ends. A loop that ends with
// an error before ctx does is logged and reported on Failed.
func (a *App) Background(ctx context.Context) {
	run := func(name string, fn func(context.Context) error) {
		a.loops.Add(1)
		go func() {
			defer a.loops.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("background loop failed", "loop", name, "error", err)
				select {
				case a.failed <- fmt.Errorf("%s: %w", name, err):
				default:
				}
			}
		}()
	}
	if a.pool != nil {
		run("gossip", func(ctx context.Context) error { a.pool.JoinRetry(ctx, a.cfg.Join); return nil })
	}
	run("health", a.tracker.Run)
	run("reconcile", a.orch.Run)
	run("events", a.watcher.Run)
	if a.git != nil {
		run("gitsetup", func(ctx context.Context) error { return a.git.Run(ctx, a.orch) })
	}
	for name, loop := range a.peer.loops() {
		run(name, loop)
	}
}

// Failed reports the first background loop that failed.
func (a *App) Failed() <-chan error { return a.failed }

// Close waits for the background loops (cancel their ctx first), then
// leaves gossip and closes the registry.
func (a *App) Close() error {
	a.loops.Wait()
	var err error
	if a.pool != nil {
		err = a.pool.Leave(2 * time.Second)
	}
	return errors.Join(err, a.db.Close())
}

// Run starts the scheduler and blocks until ctx ends or a part fails.
func Run(ctx context.Context, cfg config.Config, log hclog.Logger) error {
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer a.Close() // runs after cancel: the loops end, then the registry closes
	defer cancel()
	a.Background(ctx)
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("scheduler ready", "listen", l.Addr().String(), "version", version.Version)
	return serveHTTP(ctx, a.echo, l, cfg.ShutdownTimeout, a.failed, a.compute.Shutdown, log)
}

// serveHTTP serves until ctx ends, the server fails or failed reports a
// failed part, then shuts down gracefully.
func serveHTTP(ctx context.Context, h http.Handler, l net.Listener, grace time.Duration, failed <-chan error, onShutdown func(), log hclog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(onShutdown) // the compute API's terminals and proxied WebSockets
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	var partErr error
	select {
	case err := <-errc:
		return err
	case partErr = <-failed:
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return errors.Join(partErr, err)
	}
	return partErr
}

// newEcho returns an echo instance whose errors all have the FastAPI shape
// {"detail": ...} the podex callers were written against.
func newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = computeapi.ErrorHandler
	return e
}
