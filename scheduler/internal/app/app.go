package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/computeapi"
	"berth/scheduler/internal/config"
	"berth/scheduler/internal/health"
	"berth/scheduler/internal/orchestrator"
	"berth/scheduler/internal/placement"
	"berth/scheduler/internal/registry"
	"berth/scheduler/internal/tiers"
	"berth/shared/gossip"
	"berth/shared/mtls"
	"berth/shared/version"
	"berth/shared/wire"
)

// Run starts the scheduler and blocks until ctx ends or a part fails.
func Run(ctx context.Context, cfg config.Config, log hclog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	db, err := registry.Open(ctx, cfg.DBPath(), log)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := seedServers(ctx, db, cfg.WorkspaceServers)
	if err != nil {
		return err
	}
	log.Info("registry open", "path", cfg.DBPath(), "seeded_servers", n)

	var pool *gossip.Pool
	if len(cfg.GossipKey) > 0 {
		pool, err = gossip.New(gossip.Config{
			Name: "scheduler", BindAddr: cfg.GossipBind, AdvertiseAddr: cfg.GossipAdvertise,
			Key: cfg.GossipKey, Label: cfg.ClusterLabel, Fast: true,
		}, wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: "scheduler", Version: version.Version}, log.Named("gossip"))
		if err != nil {
			return err
		}
		defer pool.Leave(2 * time.Second)
		go pool.JoinRetry(ctx, cfg.Join)
	} else {
		log.Warn("gossip disabled: no gossip key configured (BERTH_GOSSIP_KEY_FILE)")
	}

	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA})
	if err != nil {
		return err
	}
	var members orchestrator.Members
	var healthPool health.Pool
	if pool != nil {
		members, healthPool = pool, pool
	}
	tracker := health.New(db, dialer, healthPool, orchestrator.AgentAddr, health.DefaultOptions(), log.Named("health"))
	orch := orchestrator.New(db, dialer, members, tracker, tiers.Builtin(), orchestrator.Options{
		Strategy: placement.ParseStrategy(cfg.Strategy), WorkspaceImage: cfg.WorkspaceImage, Runtime: cfg.DockerRuntime,
	}, log.Named("orchestrator"))

	e := newEcho()
	computeapi.New(computeapi.Deps{Workspaces: orch, ServiceToken: cfg.ServiceToken, Log: log.Named("compute"), Version: version.Version}).Register(e)
	admin.New(admin.Deps{Token: cfg.AdminToken, Members: members, Log: log.Named("admin")}).Register(e)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = tracker.Run(ctx) }()
	go func() { _ = orch.RunCleanup(ctx, 5*time.Second) }()

	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("scheduler ready", "listen", l.Addr().String(), "version", version.Version)
	return serveHTTP(ctx, e, l, cfg.ShutdownTimeout, log)
}

func serveHTTP(ctx context.Context, h http.Handler, l net.Listener, grace time.Duration, log hclog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// newEcho returns an echo instance whose errors all have the FastAPI shape
// {"detail": ...} the podex callers were written against.
func newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = computeapi.ErrorHandler
	return e
}
