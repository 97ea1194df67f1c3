package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"berth/scheduler/internal/admin"
	"berth/scheduler/internal/agentclient"
	"berth/scheduler/internal/cluster"
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
	"berth/shared/httpbudget"
	"berth/shared/mtls"
	"berth/shared/version"
	"berth/shared/wire"
)

// App is a wired scheduler. Build it with New, then Run it; tests and
// benchmarks may serve Handler themselves.
type App struct {
	cfg        config.Config
	log        hclog.Logger
	db         *registry.DB
	node       *cluster.Node     // the raft node; nil for a scheduler alone (no BERTH_NODE_ID)
	pool       *gossip.Pool      // nil when gossip is off
	registered *registeredAgents // gossip admission: the registered server ids (nil when gossip is off)
	tracker    *health.Tracker
	watcher    *health.Watcher
	peer       *peer // the podex API peer and billing; nil when COMPUTE_API_BASE_URL is unset (podex.go)
	orch       *orchestrator.Orchestrator
	git        *gitsetup.Service // nil with BERTH_GIT_ENV
	metrics    *metrics.Metrics
	compute    *computeapi.API
	echo       *echo.Echo
	// adminEcho serves /admin on its own listener (BERTH_ADMIN_LISTEN); nil
	// when echo serves it too.
	adminEcho *echo.Echo
	// tlsPair is the listeners' certificate, re-read when its files change
	// (BERTH_HTTP_TLS_CERT/KEY); nil = plain HTTP.
	tlsPair *mtls.KeyPairFile
	loops   sync.WaitGroup // the Background loops
	joining bool           // Background asks BERTH_RAFT_JOIN's member to add this node
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
	if cfg.NodeID != "" {
		if err := a.openNode(ctx); err != nil {
			db.Close()
			return nil, err
		}
	} else if err := leaveCluster(ctx, cfg.DataDir, db, log); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.build(ctx); err != nil {
		if a.node != nil {
			_ = a.node.Close()
		}
		db.Close()
		return nil, err
	}
	if a.node == nil { // alone: it leads from the start
		if err := a.leaderStart(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return a, nil
}

// openNode starts the raft node on the registry (high availability): it
// bootstraps a new cluster or joins one when told to and it has no raft
// state yet.
func (a *App) openNode(ctx context.Context) error {
	cfg := a.cfg
	id, err := mtls.Load(mtls.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, CRL: cfg.TLSCRL, Log: a.log.Named("tls")})
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	a.node, err = cluster.Open(cluster.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir, Bind: cfg.RaftBind, Advertise: cfg.RaftAdvertise, TLS: id,
		HeartbeatTimeout: cfg.RaftTimeout, ElectionTimeout: cfg.RaftTimeout, LeaderLeaseTimeout: cfg.RaftTimeout / 2,
		Logger: a.log,
	}, a.db)
	if err != nil {
		return err
	}
	switch {
	case a.node.HasState():
		a.log.Info("raft: member of a cluster already", "node_id", cfg.NodeID, "addr", a.node.Addr())
	case cfg.RaftBootstrap:
		if err := a.node.Bootstrap(30 * time.Second); err != nil {
			return err
		}
		a.log.Info("raft: bootstrapped a new cluster", "node_id", cfg.NodeID, "addr", a.node.Addr())
	case cfg.RaftJoin != "":
		a.joining = true // Background joins: the cluster must see this node serve first
	default:
		a.log.Warn("raft: no cluster yet; waiting to be added (scheduler raft add, or BERTH_RAFT_JOIN / BERTH_RAFT_BOOTSTRAP)")
	}
	return nil
}

// leaveCluster: a scheduler started alone (no BERTH_NODE_ID) on the data
// of a raft member takes its registry out of the cluster, since it now
// writes without raft: the raft state is moved aside (raft.left-TIME) and
// the file forgets its cluster, so that it can only come back by
// bootstrapping a new cluster or as a new member (a snapshot then replaces
// its file).
func leaveCluster(ctx context.Context, dataDir string, db *registry.DB, log hclog.Logger) error {
	dir := filepath.Join(dataDir, "raft")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	aside := fmt.Sprintf("%s.left-%s", dir, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("leave the raft cluster: %w", err)
	}
	if err := db.StartCluster(ctx, ""); err != nil {
		return err
	}
	log.Warn("this data directory belonged to a raft cluster; running alone (BERTH_NODE_ID unset) takes it out: its raft state was moved aside",
		"moved_to", aside)
	return nil
}

// leaderStart is the writes a scheduler makes when it starts to lead (at
// start when it runs alone): the servers declared in configuration, and
// billing on or off.
func (a *App) leaderStart(ctx context.Context) error {
	n, err := seedServers(ctx, a.db, a.cfg.WorkspaceServers)
	if err != nil {
		return err
	}
	if n > 0 {
		a.log.Info("servers registered from configuration", "count", n)
	}
	return a.peer.start(ctx, a.db, a.log)
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
	a.db.SealCredentials(box)                                  // git credentials never in the SQLite file in clear
	if _, err := parseSeed(cfg.WorkspaceServers); err != nil { // written by leaderStart
		return err
	}
	log.Info("registry open", "path", cfg.DBPath())

	var members orchestrator.Members
	var healthPool health.Pool
	if len(cfg.GossipKey) > 0 {
		if a.registered, err = newRegisteredAgents(ctx, a.db.ListServerAddrs); err != nil {
			return err
		}
		name := "scheduler"
		if cfg.NodeID != "" {
			name = cfg.NodeID // one member per scheduler of a raft cluster
		}
		a.pool, err = gossip.New(gossip.Config{
			Name: name, BindAddr: cfg.GossipBind, AdvertiseAddr: cfg.GossipAdvertise,
			Key: cfg.GossipKey, Keys: cfg.GossipKeys, Label: cfg.ClusterLabel, Fast: true, PruneAfter: cfg.GossipPruneAfter,
			Admit: a.registered.Admit,
		}, wire.NodeMeta{Role: wire.NodeRoleScheduler, ServerID: name, Version: version.Version}, log.Named("gossip"))
		if err != nil {
			return err
		}
		members, healthPool = a.pool, a.pool
	} else {
		log.Warn("gossip disabled: no gossip key configured (BERTH_GOSSIP_KEY_FILE)")
	}

	// Re-read when they change: certificate, key, CA bundle, revocation list.
	dialer, err := agentclient.NewDialer(mtls.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, CRL: cfg.TLSCRL, Log: log.Named("tls")})
	if err != nil {
		return err
	}
	a.metrics = metrics.New()
	dialer.Observe(a.metrics.AgentCall)
	hopts := health.DefaultOptions()
	hopts.SlowProbeInterval, hopts.ProbeRate = cfg.SlowProbeInterval, cfg.ProbeRate
	a.tracker = health.New(a.db, dialer, healthPool, orchestrator.AgentAddr, hopts, log.Named("health"))
	if a.peer, err = newPeer(cfg, a.db, a.tracker, dialer, a.metrics, log); err != nil {
		return err
	}
	ocfg := orchestrator.Default()
	ocfg.Strategy, ocfg.ClusterID, ocfg.CPUOvercommit = placement.ParseStrategy(cfg.Strategy), cfg.ClusterID, cfg.CPUOvercommit
	ocfg.WorkspaceImage, ocfg.Runtime = cfg.WorkspaceImage, cfg.DockerRuntime
	ocfg.SandboxExceptions = cfg.SandboxExceptions
	ocfg.ReconcileInterval, ocfg.OrphanGrace, ocfg.LostGrace = cfg.ReconcileInterval, cfg.OrphanGrace, cfg.ServerLostGrace
	ocfg.ReconcileRate = cfg.ReconcileRate
	ocfg.HomeMoveTimeout = cfg.HomeMoveTimeout
	ocfg.IdleTimeout, ocfg.IdleCPUPercent = cfg.IdleTimeout, cfg.IdleCPUPercent
	ocfg.EventRetention = cfg.EventRetention
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
	a.watcher = health.NewWatcher(dialer, a.orch, log.Named("events"))
	a.tracker.FollowEvents(a.watcher) // the tracker hears the agents' event numbers

	a.metrics.Watch(stateView{a})
	if a.node != nil {
		a.metrics.WatchRaft(a.node)
	}
	if cfg.HTTPTLSCert != "" {
		if a.tlsPair, err = mtls.LoadKeyPairFile(cfg.HTTPTLSCert, cfg.HTTPTLSKey); err != nil {
			return fmt.Errorf("https certificate (BERTH_HTTP_TLS_CERT, BERTH_HTTP_TLS_KEY): %w", err)
		}
		a.tlsPair.SetLogger(log.Named("https"))
	}
	a.echo = newEcho()
	if len(cfg.CORSOrigins) > 0 { // contract §1.3: the compute routes; never /admin
		a.echo.Use(middleware.CORSWithConfig(middleware.CORSConfig{AllowOrigins: cfg.CORSOrigins, AllowCredentials: true,
			Skipper: isAdminPath}))
	}
	a.echo.GET("/metrics", echo.WrapHandler(metrics.RequireToken(cfg.MetricsToken, a.metrics.Handler())))
	a.compute = computeapi.New(computeapi.Deps{Workspaces: a.orch, ServiceToken: cfg.ServiceToken, Log: log.Named("compute"), Version: version.Version,
		FileLimit: cfg.FileLimit, ServiceTokenNext: cfg.ServiceTokenNext, JSONBodyLimit: cfg.JSONBodyLimit,
		UserExecs: cfg.UserExecLimit, UserTransfers: cfg.UserTransferLimit, HTTP: cfg.HTTP})
	a.compute.Register(a.echo)
	var (
		raftView   func() (any, error)
		raftAdd    func(id, addr string) error
		raftRemove func(id string) error
	)
	if a.node != nil {
		raftView = func() (any, error) { return a.node.Status() }
		raftAdd, raftRemove = a.node.AddVoter, a.node.RemoveServer
	}
	adm := admin.New(admin.Deps{Raft: raftView, RaftAdd: raftAdd, RaftRemove: raftRemove, Token: cfg.AdminToken, ServiceToken: cfg.ServiceToken, ServiceTokenNext: cfg.ServiceTokenNext, Registry: a.db, Fleet: a.orch,
		Agents: dialer, Members: healthPool, Billing: a.peer.billingView(a.db), Log: log.Named("admin"),
		SessionTTL: cfg.SessionTTL, SessionIdle: cfg.SessionIdle, SecureCookie: cfg.SecureCookie, HTTP: cfg.HTTP})
	adm.RegisterService(a.echo)
	if cfg.AdminListen != "" {
		a.adminEcho = newEcho()
		adm.RegisterAdmin(a.adminEcho)
	} else {
		adm.RegisterAdmin(a.echo)
	}
	return nil
}

// isAdminPath reports whether c is an /admin request (no CORS there).
func isAdminPath(c echo.Context) bool {
	p := c.Request().URL.Path
	return p == "/admin" || strings.HasPrefix(p, "/admin/") || strings.HasPrefix(c.Path(), "/admin")
}

// Handler serves every route of the main listener: with BERTH_ADMIN_LISTEN
// set, every route but /admin (AdminHandler). With raft, a scheduler that
// does not lead forwards the requests to the one that does.
func (a *App) Handler() http.Handler { return a.forward("main", a.echo) }

// AdminHandler serves /admin (the admin API and the panel): the second
// listener's routes with BERTH_ADMIN_LISTEN, else the same as Handler.
func (a *App) AdminHandler() http.Handler {
	if a.adminEcho != nil {
		return a.forward("admin", a.adminEcho)
	}
	return a.Handler()
}

// forward wraps listener's handler h in the forwarding to the raft leader
// (none alone).
func (a *App) forward(listener string, h http.Handler) http.Handler {
	if a.node == nil {
		return h
	}
	return a.node.Forward(cluster.Route{Listener: listener, Local: servedHere, Wait: a.cfg.LeaderWait, Wrap: a.cfg.HTTP.Streaming}, h)
}

// servedHere: the routes every scheduler answers itself: its liveness, its
// metrics and its own raft view.
func servedHere(r *http.Request) bool {
	switch r.URL.Path {
	case "/health", "/metrics", "/admin/cluster/raft":
		return true
	}
	return false
}

// peerHandler serves what other schedulers forward over the raft port, each
// request with the routes of the listener it came in on.
func (a *App) peerHandler() http.Handler {
	return a.node.PeerHandler(a.cfg.LeaderWait, func(listener string) http.Handler {
		if listener == "admin" && a.adminEcho != nil {
			return a.adminEcho
		}
		return a.echo
	})
}

// TLSConfig is the listeners' TLS configuration, nil for plain HTTP. Its
// certificate is re-read on the first handshake after its files changed
// (checked at most every mtls.DefaultCheckInterval).
func (a *App) TLSConfig() *tls.Config {
	if a.tlsPair == nil {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: a.tlsPair.GetCertificate}
}

// SetTLSCheckInterval changes how often, at most, the certificate files
// are re-read (tests: 0, every handshake).
func (a *App) SetTLSCheckInterval(d time.Duration) {
	if a.tlsPair != nil {
		a.tlsPair.SetCheckInterval(d)
	}
}

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
		run("gossip-admission", func(ctx context.Context) error { return a.registered.Run(ctx, a.log.Named("gossip")) })
		if a.cfg.GossipKeyFile != "" { // keyring rotation without a restart
			run("gossip-keys", func(ctx context.Context) error {
				a.pool.WatchKeyFile(ctx, a.cfg.GossipKeyFile, time.Second)
				return nil
			})
		}
	}
	if a.node == nil {
		a.leaderLoops(ctx, &a.loops)
		return
	}
	if a.joining {
		run("raft-join", func(ctx context.Context) error { return a.node.Join(ctx, a.cfg.RaftJoin) })
	}
	run("leadership", a.followLeadership)
}

// leaderLoops starts the loops that act for the whole fleet (health
// decisions, reconciliation, events, git setup, the podex API): on the one
// scheduler that leads. They run until ctx ends; wg waits for them.
func (a *App) leaderLoops(ctx context.Context, wg *sync.WaitGroup) {
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("background loop failed", "loop", name, "error", err)
				select {
				case a.failed <- fmt.Errorf("%s: %w", name, err):
				default:
				}
			}
		}()
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

// followLeadership runs the leader's loops while this scheduler leads: on
// gaining the lead it makes leaderStart's writes (the first write waits
// until every earlier entry is applied here), then starts them; on losing
// it, it stops them and waits for them.
func (a *App) followLeadership(ctx context.Context) error {
	var (
		stop func()
		term uint64 // the term the loops run for
		wg   sync.WaitGroup
	)
	end := func() {
		if stop != nil {
			stop()
			wg.Wait()
			stop = nil
		}
	}
	defer end()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		leading := a.node.IsLeader() && !a.db.Diverged()
		if leading && stop != nil && a.node.Term() != term {
			end() // lost and won again between two ticks: start afresh
		}
		switch {
		case leading && stop == nil:
			term = a.node.Term()
			lctx, cancel := context.WithCancel(ctx)
			if err := a.leaderStart(lctx); err != nil {
				cancel()
				a.log.Warn("raft: leading, but the start writes failed; trying again", "error", err)
				break
			}
			stop = cancel
			a.tracker.Forget() // nothing from an earlier term carries over
			a.watcher.Forget()
			a.leaderLoops(lctx, &wg)
			a.log.Info("raft: leading; the fleet's loops run here", "node_id", a.cfg.NodeID)
		case !leading && stop != nil:
			end()
			a.log.Info("raft: no longer leading; the fleet's loops stopped here", "node_id", a.cfg.NodeID)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
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
	if a.node != nil {
		err = errors.Join(err, a.node.Close())
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
	var adminL net.Listener
	if cfg.AdminListen != "" {
		if adminL, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			l.Close()
			return fmt.Errorf("admin listen (BERTH_ADMIN_LISTEN): %w", err)
		}
	}
	return a.Serve(ctx, l, adminL)
}

// Serve serves the routes on l, and /admin on adminL when the admin
// listener is configured (adminL is ignored otherwise), with TLS when a
// certificate is configured, until ctx ends or a part fails; then it shuts
// down gracefully.
func (a *App) Serve(ctx context.Context, l, adminL net.Listener) error {
	ls := []listener{{name: "listen", l: l, h: a.Handler(), onShutdown: a.compute.Shutdown}}
	if a.adminEcho != nil {
		if adminL == nil {
			l.Close()
			return errors.New("BERTH_ADMIN_LISTEN is set but no admin listener was given")
		}
		ls = append(ls, listener{name: "admin_listen", l: adminL, h: a.AdminHandler()})
	} else if adminL != nil {
		adminL.Close()
	}
	if a.node != nil { // requests other schedulers forward, inside the raft port's mutual TLS
		ls = append(ls, listener{name: "raft", l: a.node.HTTPListener(), h: a.peerHandler(), onShutdown: a.compute.Shutdown, plain: true})
	}
	scheme := "http"
	if a.tlsPair != nil {
		scheme = "https"
	}
	args := []any{"scheme", scheme, "version", version.Version}
	for _, x := range ls {
		args = append(args, x.name, x.l.Addr().String())
	}
	a.log.Info("scheduler ready", args...)
	stepDown := func() {}
	if a.node != nil { // the others elect at once rather than after a timeout
		stepDown = a.node.StepDown
	}
	return serveHTTP(ctx, ls, a.cfg.HTTP, a.TLSConfig(), a.cfg.ShutdownTimeout, a.failed, stepDown, a.log)
}

// listener is one HTTP listener of the scheduler and what it serves.
type listener struct {
	name       string
	l          net.Listener
	h          http.Handler
	onShutdown func() // nil: none
	plain      bool   // HTTP whatever tlsCfg says (the connection is TLS already)
}

// serveHTTP serves until ctx ends, the server fails or failed reports a
// failed part, then shuts down gracefully. Every connection is bounded by
// budgets (BERTH_HTTP_*: header, body, write and idle timeouts, header
// size); the compute API's streaming routes take themselves off the
// whole-request ones (computeapi.API.streaming).
//
// Each listener has its own server; with tlsCfg they speak TLS only.
func serveHTTP(ctx context.Context, ls []listener, budgets httpbudget.Timeouts, tlsCfg *tls.Config, grace time.Duration, failed <-chan error,
	stepDown func(), log hclog.Logger) error {
	servers := make([]*http.Server, 0, len(ls))
	errc := make(chan error, len(ls))
	for _, x := range ls {
		srv := budgets.Server(x.h)
		if x.onShutdown != nil {
			srv.RegisterOnShutdown(x.onShutdown) // the compute API's terminals and proxied WebSockets
		}
		tlsOn := tlsCfg != nil && !x.plain
		if tlsOn {
			srv.TLSConfig = tlsCfg.Clone()
		}
		servers = append(servers, srv)
		go func() {
			var err error
			if tlsOn {
				err = srv.ServeTLS(x.l, "", "") // the certificate comes from GetCertificate
			} else {
				err = srv.Serve(x.l)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				err = fmt.Errorf("%s: %w", x.name, err)
			}
			errc <- err
		}()
	}
	var partErr error
	select {
	case partErr = <-errc:
	case partErr = <-failed:
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace)
	stepDown()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errs <- srv.Shutdown(sctx) }()
	}
	for range servers {
		if err := <-errs; err != nil && !errors.Is(err, context.DeadlineExceeded) {
			partErr = errors.Join(partErr, err)
		}
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
