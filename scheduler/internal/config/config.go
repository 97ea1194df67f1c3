package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"berth/shared/envflag"
	"berth/shared/httpbudget"
	"berth/shared/wire"
)

// Config is everything the scheduler needs.
type Config struct {
	Listen  string // compute API, admin API and panel (HTTPS with HTTPTLSCert, else HTTP)
	DataDir string // holds berth.db

	// The scheduler's client identity towards agents, and its place in the
	// gossip pool (it listens as an observer; gossip is off without a key).
	envflag.Peer
	ClusterID string // labels this scheduler's containers; reconciliation touches no others

	// High availability (issue 14; README "Scheduler high availability"):
	// with NodeID set the registry is replicated by raft among the
	// schedulers, over RaftBind (mutual TLS with the scheduler certificate,
	// which must name RaftAdvertise's host). A new cluster is started by one
	// scheduler with RaftBootstrap; the others RaftJoin any member.
	NodeID        string        // BERTH_NODE_ID: this scheduler's raft id; "" = one scheduler, no raft
	RaftBind      string        // BERTH_RAFT_BIND: raft port (also forwarded requests and joins)
	RaftAdvertise string        // BERTH_RAFT_ADVERTISE: the address other schedulers dial; "" = RaftBind
	RaftBootstrap bool          // BERTH_RAFT_BOOTSTRAP / --bootstrap: start a new cluster of this scheduler alone
	RaftJoin      string        // BERTH_RAFT_JOIN / --raft-join: a member's raft address to join through
	RaftTimeout   time.Duration // BERTH_RAFT_TIMEOUT: heartbeat and election timeout (the leader lease is half)
	LeaderWait    time.Duration // BERTH_LEADER_WAIT: how long a request waits for an election before 503

	ServiceToken string // INTERNAL_SERVICE_TOKEN: podex services; empty → 500 on every authenticated route
	AdminToken   string // BERTH_ADMIN_TOKEN: admin API and panel

	// ServiceTokenNext (INTERNAL_SERVICE_TOKEN_NEXT) is accepted as well as
	// ServiceToken during a rotation; calls to the podex API send
	// ServiceToken.
	ServiceTokenNext string

	// TLS of the HTTP listeners and the admin surface (README "TLS and the
	// admin panel").
	HTTPTLSCert  string        // BERTH_HTTP_TLS_CERT: PEM certificate (chain) of the listeners; "" = plain HTTP
	HTTPTLSKey   string        // BERTH_HTTP_TLS_KEY: its key; both files are re-read when they change
	AdminListen  string        // BERTH_ADMIN_LISTEN: a second listener that alone serves /admin; "" = one listener
	SecureCookie bool          // BERTH_ADMIN_SECURE_COOKIE: mark the panel cookie Secure on plain HTTP too (behind a TLS front)
	SessionTTL   time.Duration // BERTH_ADMIN_SESSION_TTL: a panel session ends this long after sign-in
	SessionIdle  time.Duration // BERTH_ADMIN_SESSION_IDLE: a panel session unused this long ends
	MetricsToken string        // BERTH_METRICS_TOKEN: bearer token /metrics requires; "" = open

	WorkspaceServers string   // COMPUTE_WORKSPACE_SERVERS: JSON list seeded into the registry at start
	APIBaseURL       string   // COMPUTE_API_BASE_URL: reverse calls to the podex API; empty = standalone
	Region           string   // COMPUTE_REGION (or COMPUTE_COMPUTE_REGION)
	CORSOrigins      []string // COMPUTE_CORS_ORIGINS
	WorkspaceImage   string   // COMPUTE_WORKSPACE_IMAGE: fallback image
	DockerRuntime    string   // COMPUTE_DOCKER_RUNTIME: "" = the agent's sandbox runtime (runsc where it works)
	// SandboxExceptions (BERTH_SANDBOX_EXCEPTIONS): weakenings of the
	// agents' workspace sandbox sent with every create (wire.SandboxExceptions).
	SandboxExceptions []string
	Strategy          string  // BERTH_PLACEMENT_STRATEGY: spread, best_fit, affinity, round_robin
	CPUOvercommit     float64 // BERTH_CPU_OVERCOMMIT: vCPUs placeable per real core (memory is never overcommitted)
	FileLimit         int64   // BERTH_FILE_LIMIT: the largest file …/files/content reads or writes, bytes

	// Request budgets (README "Request budgets").
	HTTP              httpbudget.Timeouts // BERTH_HTTP_*: connection timeouts and header limit of the listener
	JSONBodyLimit     int64               // BERTH_JSON_BODY_LIMIT: the largest JSON body of a compute API route, bytes
	UserExecLimit     int                 // BERTH_USER_EXEC_LIMIT: execs (exec, exec-stream) one user runs at once
	UserTransferLimit int                 // BERTH_USER_TRANSFER_LIMIT: file reads and writes (files/content) one user runs at once

	ReconcileInterval time.Duration // BERTH_RECONCILE_INTERVAL: registry vs containers, per server
	ReconcileRate     float64       // BERTH_RECONCILE_RATE: servers compared a second at most (a larger fleet's pass takes longer)
	// SlowProbeInterval (BERTH_SLOW_PROBE_INTERVAL) is the shortest mean time
	// between mTLS health probes of an agent gossip reports alive; ProbeRate
	// (BERTH_PROBE_RATE) bounds those probes a second across the fleet, so
	// a large fleet's agents are probed further apart (scheduler/internal/health).
	SlowProbeInterval time.Duration
	ProbeRate         float64
	OrphanGrace       time.Duration // BERTH_ORPHAN_GRACE: unrecorded containers are removed after this
	ServerLostGrace   time.Duration // BERTH_SERVER_LOST_GRACE: a server down this long loses its workspaces
	HomeMoveTimeout   time.Duration // BERTH_HOME_MOVE_TIMEOUT: one copy of a home directory between hosts
	IdleTimeout       time.Duration // BERTH_IDLE_TIMEOUT: stop a running workspace unused this long; 0 = never
	IdleCPUPercent    float64       // BERTH_IDLE_CPU_PERCENT: CPU use (% of a core) that counts as use; 0 = never
	EventRetention    time.Duration // BERTH_EVENT_RETENTION: events older than this are deleted (hourly); 0 = kept forever

	// Git setup (scheduler/internal/gitsetup).
	GitEnv          bool          // BERTH_GIT_ENV: GIT_* variables, credentials included, to the container instead of berth's clone
	GitSetupTimeout time.Duration // BERTH_GIT_SETUP_TIMEOUT: bound on one workspace's git setup (every clone)
	GitSetupWorkers int           // BERTH_GIT_SETUP_WORKERS: workspaces set up at once
	SecretsKeyFile  string        // BERTH_SECRETS_KEY_FILE: key sealing git credentials in the registry; "" = <data dir>/secrets.key

	// The podex API peer and billing, used only with COMPUTE_API_BASE_URL.
	ServerSyncInterval   time.Duration // COMPUTE_SERVER_SYNC_INTERVAL: the API's server list is read this often
	APIHeartbeatInterval time.Duration // BERTH_API_HEARTBEAT_INTERVAL: server heartbeats to the API
	HardwareSpecsTTL     time.Duration // BERTH_HARDWARE_SPECS_TTL: the API's hardware specs are read this often
	APITimeout           time.Duration // BERTH_API_TIMEOUT: one try of one call to the API
	APIAttempts          int           // BERTH_API_ATTEMPTS: tries of one call (no answer, 5xx, 408, 429)
	BillingInterval      time.Duration // BERTH_BILLING_INTERVAL: length of a billed interval of compute time
	BillingFlushInterval time.Duration // BERTH_BILLING_FLUSH_INTERVAL: the usage outbox is sent this often
	BillingBatch         int           // BERTH_BILLING_BATCH: usage events per request
	BillingRetention     time.Duration // BERTH_BILLING_RETENTION: acknowledged usage events are kept this long

	ShutdownTimeout time.Duration
	LogLevel        string
	LogJSON         bool
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen:         ":3003",
		DataDir:        "/var/lib/berth-scheduler",
		Peer:           envflag.Peer{GossipBind: "0.0.0.0:7946", ClusterLabel: "berth"},
		ClusterID:      "berth",
		WorkspaceImage: "berth/workspace:dev",
		Strategy:       "spread",
		CORSOrigins:    []string{"http://localhost:3000"},
		CPUOvercommit:  1,
		FileLimit:      MinFileLimit,

		SessionTTL:  12 * time.Hour,
		SessionIdle: time.Hour,

		ShutdownTimeout: 60 * time.Second,

		HTTP:              httpbudget.Default(),
		JSONBodyLimit:     1 << 20,
		UserExecLimit:     16,
		UserTransferLimit: 4,

		ReconcileInterval: 10 * time.Second,
		ReconcileRate:     50,
		SlowProbeInterval: 5 * time.Second,
		RaftBind:          "0.0.0.0:7950",
		RaftTimeout:       time.Second,
		LeaderWait:        3 * time.Second,
		ProbeRate:         50,
		OrphanGrace:       10 * time.Minute,
		ServerLostGrace:   time.Minute,
		HomeMoveTimeout:   2 * time.Hour,
		GitSetupTimeout:   10 * time.Minute,
		GitSetupWorkers:   4,
		IdleTimeout:       24 * time.Hour,
		IdleCPUPercent:    5,
		EventRetention:    30 * 24 * time.Hour,
		LogLevel:          "info",

		ServerSyncInterval:   30 * time.Second,
		APIHeartbeatInterval: 30 * time.Second,
		HardwareSpecsTTL:     5 * time.Minute,
		APITimeout:           10 * time.Second,
		APIAttempts:          3,
		BillingInterval:      time.Minute,
		BillingFlushInterval: 5 * time.Second,
		BillingBatch:         50,
		BillingRetention:     24 * time.Hour,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen address %q: %v (--listen, BERTH_LISTEN)", c.Listen, err)
	}
	for _, e := range c.SandboxExceptions {
		if !slices.Contains(wire.SandboxExceptions, e) {
			add("sandbox exception %q: want some of %s (BERTH_SANDBOX_EXCEPTIONS)", e, strings.Join(wire.SandboxExceptions, ","))
		}
	}
	if !filepath.IsAbs(c.DataDir) {
		add("data dir %q: must be an absolute path (--data-dir, BERTH_DATA_DIR)", c.DataDir)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") || (c.TLSCert != "" && c.TLSCA == "") {
		add("tls: cert, key and ca go together (BERTH_TLS_CERT, BERTH_TLS_KEY, BERTH_TLS_CA)")
	}
	if c.TLSCert == "" {
		add("tls: the scheduler's client certificate is required to reach agents (BERTH_TLS_CERT)")
	}
	if len(c.GossipKey) != 0 {
		switch len(c.GossipKey) {
		case 16, 24, 32:
		default:
			add("gossip key: want 16, 24 or 32 bytes, got %d", len(c.GossipKey))
		}
		if _, _, err := net.SplitHostPort(c.GossipBind); err != nil {
			add("gossip bind %q: %v", c.GossipBind, err)
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 && !strings.HasPrefix(c.AdminToken, "dev-") {
		add("admin token: use at least 16 characters")
	}
	if c.APIBaseURL != "" {
		if u, err := url.Parse(c.APIBaseURL); err != nil || u.Scheme == "" || u.Host == "" {
			add("COMPUTE_API_BASE_URL %q: want an absolute URL", c.APIBaseURL)
		}
	}
	if c.ReconcileInterval < 100*time.Millisecond || c.OrphanGrace < 0 || c.ServerLostGrace < time.Second {
		add("reconcile interval must be at least 100ms, orphan grace not negative, server lost grace at least 1s")
	}
	if c.NodeID != "" {
		if _, _, err := net.SplitHostPort(c.RaftBind); err != nil {
			add("raft bind %q: %v (BERTH_RAFT_BIND; needed with BERTH_NODE_ID)", c.RaftBind, err)
		}
		if c.RaftAdvertise != "" {
			if _, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
				add("raft advertise %q: %v (BERTH_RAFT_ADVERTISE)", c.RaftAdvertise, err)
			}
		}
		if c.RaftBootstrap && c.RaftJoin != "" {
			add("raft: --bootstrap starts a new cluster and --raft-join joins one: give one (BERTH_RAFT_BOOTSTRAP, BERTH_RAFT_JOIN)")
		}
		if c.RaftTimeout < 50*time.Millisecond || c.LeaderWait < 0 {
			add("raft timeout %s: at least 50ms; leader wait not negative (BERTH_RAFT_TIMEOUT, BERTH_LEADER_WAIT)", c.RaftTimeout)
		}
	}
	if c.SlowProbeInterval < time.Second {
		add("slow probe interval %s: at least 1s (BERTH_SLOW_PROBE_INTERVAL)", c.SlowProbeInterval)
	}
	if c.ReconcileRate < 1 {
		add("reconcile rate %g: at least 1 server a second (BERTH_RECONCILE_RATE)", c.ReconcileRate)
	}
	if c.ProbeRate < 1 {
		add("probe rate %g: at least 1 a second (BERTH_PROBE_RATE)", c.ProbeRate)
	}
	if c.IdleTimeout < 0 || c.IdleCPUPercent < 0 {
		add("idle timeout %s and idle cpu percent %g: must not be negative", c.IdleTimeout, c.IdleCPUPercent)
	}
	if c.EventRetention < 0 {
		add("event retention %s: must not be negative (0 keeps events forever; BERTH_EVENT_RETENTION)", c.EventRetention)
	}
	if c.GitSetupTimeout < time.Second || c.GitSetupWorkers < 1 || c.GitSetupWorkers > 64 {
		add("git setup timeout %s and workers %d: want at least 1s and 1 to 64 (BERTH_GIT_SETUP_TIMEOUT, BERTH_GIT_SETUP_WORKERS)",
			c.GitSetupTimeout, c.GitSetupWorkers)
	}
	if c.ServerSyncInterval <= 0 || c.APIHeartbeatInterval <= 0 || c.HardwareSpecsTTL <= 0 || c.APITimeout <= 0 ||
		c.BillingFlushInterval <= 0 || c.BillingRetention <= 0 {
		add("podex API and billing intervals, timeout and retention must be positive")
	}
	if c.APIAttempts < 1 || c.BillingBatch < 1 {
		add("api attempts %d and billing batch %d: at least 1", c.APIAttempts, c.BillingBatch)
	}
	if c.BillingInterval < time.Second {
		add("billing interval %s: at least 1s (BERTH_BILLING_INTERVAL)", c.BillingInterval)
	}
	if c.HomeMoveTimeout < time.Minute {
		add("home move timeout %s: at least 1m", c.HomeMoveTimeout)
	}
	if c.CPUOvercommit < 1 || c.CPUOvercommit > 64 {
		add("cpu overcommit %g: want 1 to 64", c.CPUOvercommit)
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		add("http tls: certificate and key go together (BERTH_HTTP_TLS_CERT, BERTH_HTTP_TLS_KEY)")
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			add("admin listen address %q: %v (BERTH_ADMIN_LISTEN)", c.AdminListen, err)
		} else if c.AdminListen == c.Listen {
			add("admin listen address %q: must differ from the listen address (BERTH_ADMIN_LISTEN, BERTH_LISTEN)", c.AdminListen)
		}
	}
	if c.SessionTTL < time.Minute || c.SessionIdle < time.Minute || c.SessionIdle > c.SessionTTL {
		add("admin session ttl %s and idle %s: at least 1m each, idle not above ttl (BERTH_ADMIN_SESSION_TTL, BERTH_ADMIN_SESSION_IDLE)",
			c.SessionTTL, c.SessionIdle)
	}
	if c.ClusterID == "" {
		add("cluster id: required (BERTH_CLUSTER_ID)")
	}
	if err := c.HTTP.Validate(httpbudget.EnvPrefix); err != nil {
		errs = append(errs, err)
	}
	if c.JSONBodyLimit < 64<<10 || c.JSONBodyLimit > 64<<20 {
		add("json body limit %d bytes: want 64 KiB to 64 MiB (BERTH_JSON_BODY_LIMIT)", c.JSONBodyLimit)
	}
	if c.UserExecLimit < 1 || c.UserTransferLimit < 1 {
		add("per-user limits: exec %d, transfer %d: at least 1 (BERTH_USER_EXEC_LIMIT, BERTH_USER_TRANSFER_LIMIT)", c.UserExecLimit, c.UserTransferLimit)
	}
	if c.ServiceTokenNext != "" && c.ServiceToken == "" {
		add("INTERNAL_SERVICE_TOKEN_NEXT without INTERNAL_SERVICE_TOKEN: set the current token too")
	}
	if c.FileLimit < MinFileLimit || c.FileLimit > MaxFileLimit {
		add("file limit %d bytes: want %d (100 MiB) to %d (64 GiB) (BERTH_FILE_LIMIT)", c.FileLimit, MinFileLimit, MaxFileLimit)
	}
	switch strings.ToLower(c.Strategy) {
	case "spread", "best_fit", "affinity", "round_robin":
	default:
		add("placement strategy %q: want spread, best_fit, affinity or round_robin", c.Strategy)
	}
	return errors.Join(errs...)
}

// DBPath is the SQLite file.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, "berth.db") }

// SecretsKeyPath is the file of the key that seals credentials in the
// registry: SecretsKeyFile, or secrets.key in the data dir.
func (c Config) SecretsKeyPath() string {
	if c.SecretsKeyFile != "" {
		return c.SecretsKeyFile
	}
	return filepath.Join(c.DataDir, "secrets.key")
}

// Load builds a Config from Default(), the file named by BERTH_CONFIG, the
// environment and args; it returns the positional arguments left.
func Load(args []string, getenv func(string) string) (Config, []string, error) {
	c := Default()
	rest, err := envflag.Load("scheduler", args, getenv, "BERTH_CONFIG", c.keys())
	return c, rest, err
}

// Usage lists the settings.
func Usage() string { c := Default(); return envflag.Usage(c.keys()) }

func (c *Config) keys() []envflag.Key {
	keys := append(envflag.PeerKeys(&c.Peer, "scheduler client"), httpbudget.Keys(&c.HTTP)...)
	return append(keys, []envflag.Key{
		{Env: "BERTH_LISTEN", Flag: "listen", Help: "HTTP listen address", Set: envflag.String(&c.Listen)},
		{Env: "BERTH_DATA_DIR", Flag: "data-dir", Help: "directory of the SQLite registry", Set: envflag.String(&c.DataDir)},
		{Env: "BERTH_NODE_ID", Flag: "node-id", Help: "high availability: this scheduler's raft id (empty: one scheduler, no raft)", Set: envflag.String(&c.NodeID)},
		{Env: "BERTH_RAFT_BIND", Flag: "raft-bind", Help: "high availability: raft port, mutual TLS (also forwarded requests and joins)", Set: envflag.String(&c.RaftBind)},
		{Env: "BERTH_RAFT_ADVERTISE", Flag: "raft-advertise", Help: "high availability: the raft address other schedulers dial; the scheduler certificate must name its host (default: the bind address)", Set: envflag.String(&c.RaftAdvertise)},
		{Env: "BERTH_RAFT_BOOTSTRAP", Flag: "bootstrap", Help: "high availability: start a new cluster of this scheduler alone (ignored once it has raft state)", Set: func(v string) (err error) {
			c.RaftBootstrap, err = strconv.ParseBool(v)
			return err
		}},
		{Env: "BERTH_RAFT_JOIN", Flag: "raft-join", Help: "high availability: raft address of a member to join the cluster through (ignored once it has raft state)", Set: envflag.String(&c.RaftJoin)},
		{Env: "BERTH_RAFT_TIMEOUT", Flag: "raft-timeout", Help: "high availability: raft heartbeat and election timeout (leader lease: half)", Set: envflag.Duration(&c.RaftTimeout)},
		{Env: "BERTH_LEADER_WAIT", Flag: "leader-wait", Help: "high availability: how long a request waits for a leader before a 503", Set: envflag.Duration(&c.LeaderWait)},
		{Env: "BERTH_CLUSTER_ID", Flag: "cluster-id", Help: "id labelling this scheduler's containers", Set: envflag.String(&c.ClusterID)},
		{Env: "INTERNAL_SERVICE_TOKEN", Flag: "service-token", Help: "token of the podex services", Set: envflag.String(&c.ServiceToken)},
		{Env: "INTERNAL_SERVICE_TOKEN_NEXT", Flag: "service-token-next", Help: "second token of the podex services, accepted too during a rotation", Set: envflag.String(&c.ServiceTokenNext)},
		{Env: "BERTH_JSON_BODY_LIMIT", Flag: "json-body-limit", Help: "largest JSON body of a compute API route: bytes, or with KiB, MiB", Set: func(v string) (err error) {
			c.JSONBodyLimit, err = ParseSize(v)
			return err
		}},
		{Env: "BERTH_USER_EXEC_LIMIT", Flag: "user-exec-limit", Help: "execs (exec, exec-stream) one user runs at once; more are 429", Set: envflag.Int(&c.UserExecLimit)},
		{Env: "BERTH_USER_TRANSFER_LIMIT", Flag: "user-transfer-limit", Help: "file reads and writes (files/content) one user runs at once; more are 429", Set: envflag.Int(&c.UserTransferLimit)},
		{Env: "BERTH_ADMIN_TOKEN", Flag: "admin-token", Help: "token of the admin API and panel", Set: envflag.String(&c.AdminToken)},
		{Env: "BERTH_HTTP_TLS_CERT", Flag: "http-tls-cert", Help: "HTTPS: PEM certificate of the listeners (re-read when it changes); unset: plain HTTP", Set: envflag.String(&c.HTTPTLSCert)},
		{Env: "BERTH_HTTP_TLS_KEY", Flag: "http-tls-key", Help: "HTTPS: PEM key of BERTH_HTTP_TLS_CERT", Set: envflag.String(&c.HTTPTLSKey)},
		{Env: "BERTH_ADMIN_LISTEN", Flag: "admin-listen", Help: "serve /admin (API and panel) only on this second address; unset: on the listen address", Set: envflag.String(&c.AdminListen)},
		{Env: "BERTH_ADMIN_SECURE_COOKIE", Flag: "admin-secure-cookie", Help: "mark the panel cookie Secure on plain HTTP too (TLS ends in front of the scheduler)", Set: func(v string) (err error) {
			c.SecureCookie, err = strconv.ParseBool(v)
			return err
		}},
		{Env: "BERTH_ADMIN_SESSION_TTL", Flag: "admin-session-ttl", Help: "panel session: ends this long after sign-in", Set: envflag.Duration(&c.SessionTTL)},
		{Env: "BERTH_ADMIN_SESSION_IDLE", Flag: "admin-session-idle", Help: "panel session: ends when unused this long", Set: envflag.Duration(&c.SessionIdle)},
		{Env: "BERTH_METRICS_TOKEN", Flag: "metrics-token", Help: "bearer token /metrics requires (unset: /metrics is open)", Set: envflag.String(&c.MetricsToken)},
		{Env: "COMPUTE_WORKSPACE_SERVERS", Flag: "workspace-servers", Help: "JSON list of servers to register at start", Set: envflag.String(&c.WorkspaceServers)},
		{Env: "COMPUTE_API_BASE_URL", Flag: "api-base-url", Help: "podex API base URL (reverse calls)", Set: envflag.String(&c.APIBaseURL)},
		{Env: "COMPUTE_COMPUTE_REGION", Flag: "compute-region", Help: "region filter (alias of COMPUTE_REGION)", Set: envflag.String(&c.Region)},
		{Env: "COMPUTE_REGION", Flag: "region", Help: "region filter of the server list", Set: envflag.String(&c.Region)},
		{Env: "COMPUTE_CORS_ORIGINS", Flag: "cors-origins", Help: "allowed CORS origins (JSON list or comma list)", Set: func(v string) error {
			c.CORSOrigins = envflag.SplitList(strings.Trim(strings.ReplaceAll(v, `"`, ""), "[]"))
			return nil
		}},
		{Env: "COMPUTE_WORKSPACE_IMAGE", Flag: "workspace-image", Help: "fallback workspace image", Set: envflag.String(&c.WorkspaceImage)},
		{Env: "COMPUTE_DOCKER_RUNTIME", Flag: "docker-runtime", Help: "container runtime (empty: the agent's sandbox runtime, runsc where it works)", Set: envflag.String(&c.DockerRuntime)},
		{Env: "BERTH_SANDBOX_EXCEPTIONS", Flag: "sandbox-exceptions", Help: "workspace sandbox weakenings sent with every create: capabilities,new_privileges,no_process_limit,runc,shared_network", Set: func(v string) error {
			c.SandboxExceptions = envflag.SplitList(v)
			return nil
		}},
		{Env: "BERTH_CPU_OVERCOMMIT", Flag: "cpu-overcommit", Help: "vCPUs placeable per real core", Set: func(v string) (err error) {
			c.CPUOvercommit, err = strconv.ParseFloat(v, 64)
			return err
		}},
		{Env: "BERTH_FILE_LIMIT", Flag: "file-limit", Help: "largest file read or written through files/content: bytes, or with KiB, MiB, GiB", Set: func(v string) (err error) {
			c.FileLimit, err = ParseSize(v)
			return err
		}},
		{Env: "BERTH_PLACEMENT_STRATEGY", Flag: "strategy", Help: "spread, best_fit, affinity, round_robin", Set: envflag.String(&c.Strategy)},
		{Env: "BERTH_RECONCILE_INTERVAL", Flag: "reconcile-interval", Help: "registry vs containers, per server", Set: envflag.Duration(&c.ReconcileInterval)},
		{Env: "BERTH_RECONCILE_RATE", Flag: "reconcile-rate", Help: "servers compared with their containers a second, at most (a larger fleet's pass takes longer than the reconcile interval)", Set: func(v string) (err error) {
			c.ReconcileRate, err = strconv.ParseFloat(v, 64)
			return err
		}},
		{Env: "BERTH_SLOW_PROBE_INTERVAL", Flag: "slow-probe-interval", Help: "mTLS health probe of an agent gossip reports alive, at most this often (others: every second)", Set: envflag.Duration(&c.SlowProbeInterval)},
		{Env: "BERTH_PROBE_RATE", Flag: "probe-rate", Help: "mTLS health probes a second, at most, of the agents gossip reports alive, across the fleet", Set: func(v string) (err error) {
			c.ProbeRate, err = strconv.ParseFloat(v, 64)
			return err
		}},
		{Env: "BERTH_ORPHAN_GRACE", Flag: "orphan-grace", Help: "remove unrecorded containers after", Set: envflag.Duration(&c.OrphanGrace)},
		{Env: "BERTH_EVENT_RETENTION", Flag: "event-retention", Help: "delete events older than this, hourly (0: keep them forever)", Set: envflag.Duration(&c.EventRetention)},
		{Env: "BERTH_IDLE_TIMEOUT", Flag: "idle-timeout", Help: "stop a running workspace unused this long (0: never; timeout_hours at create wins)", Set: envflag.Duration(&c.IdleTimeout)},
		{Env: "BERTH_IDLE_CPU_PERCENT", Flag: "idle-cpu-percent", Help: "CPU use, % of one core, that counts as use for the idle stop (0: never)", Set: func(v string) (err error) {
			c.IdleCPUPercent, err = strconv.ParseFloat(v, 64)
			return err
		}},
		{Env: "BERTH_GIT_ENV", Flag: "git-env", Help: "hand repos, identity and credentials to the container as GIT_* variables (images that clone by themselves) instead of cloning", Set: func(v string) (err error) {
			c.GitEnv, err = strconv.ParseBool(v)
			return err
		}},
		{Env: "BERTH_GIT_SETUP_TIMEOUT", Flag: "git-setup-timeout", Help: "bound on one workspace's git setup (every clone)", Set: envflag.Duration(&c.GitSetupTimeout)},
		{Env: "BERTH_GIT_SETUP_WORKERS", Flag: "git-setup-workers", Help: "workspaces whose git setup runs at once", Set: envflag.Int(&c.GitSetupWorkers)},
		{Env: "BERTH_SECRETS_KEY_FILE", Flag: "secrets-key-file", Help: "key sealing git credentials in the registry (created if missing; default <data dir>/secrets.key)", Set: envflag.String(&c.SecretsKeyFile)},
		{Env: "BERTH_HOME_MOVE_TIMEOUT", Flag: "home-move-timeout", Help: "bound on one copy of a home between hosts", Set: envflag.Duration(&c.HomeMoveTimeout)},
		{Env: "BERTH_SERVER_LOST_GRACE", Flag: "server-lost-grace", Help: "a server down this long loses its workspaces", Set: envflag.Duration(&c.ServerLostGrace)},
		{Env: "COMPUTE_SERVER_SYNC_INTERVAL", Flag: "server-sync-interval", Help: "podex API: read its server list this often (seconds or a duration)", Set: envflag.Duration(&c.ServerSyncInterval)},
		{Env: "BERTH_API_HEARTBEAT_INTERVAL", Flag: "api-heartbeat-interval", Help: "podex API: server heartbeats this often", Set: envflag.Duration(&c.APIHeartbeatInterval)},
		{Env: "BERTH_HARDWARE_SPECS_TTL", Flag: "hardware-specs-ttl", Help: "podex API: read the hardware specs (tiers) this often", Set: envflag.Duration(&c.HardwareSpecsTTL)},
		{Env: "BERTH_API_TIMEOUT", Flag: "api-timeout", Help: "podex API: one try of one call", Set: envflag.Duration(&c.APITimeout)},
		{Env: "BERTH_API_ATTEMPTS", Flag: "api-attempts", Help: "podex API: tries of one call", Set: envflag.Int(&c.APIAttempts)},
		{Env: "BERTH_BILLING_INTERVAL", Flag: "billing-interval", Help: "billing: length of a billed interval of compute time", Set: envflag.Duration(&c.BillingInterval)},
		{Env: "BERTH_BILLING_FLUSH_INTERVAL", Flag: "billing-flush-interval", Help: "billing: send the usage outbox this often", Set: envflag.Duration(&c.BillingFlushInterval)},
		{Env: "BERTH_BILLING_BATCH", Flag: "billing-batch", Help: "billing: usage events per request", Set: envflag.Int(&c.BillingBatch)},
		{Env: "BERTH_BILLING_RETENTION", Flag: "billing-retention", Help: "billing: keep acknowledged usage events this long", Set: envflag.Duration(&c.BillingRetention)},
		{Env: "COMPUTE_SHUTDOWN_TIMEOUT", Flag: "shutdown-timeout", Help: "graceful shutdown limit, seconds", Set: func(v string) (err error) {
			c.ShutdownTimeout, err = envflag.ParseSeconds(v)
			return err
		}},
		{Env: "BERTH_LOG_LEVEL", Flag: "log-level", Help: "trace, debug, info, warn, error", Set: envflag.String(&c.LogLevel)},
		{Env: "BERTH_LOG_JSON", Flag: "log-json", Help: "JSON logs", Set: func(v string) error { c.LogJSON = v == "true" || v == "1"; return nil }},
	}...)
}

// Bounds of FileLimit: at least 100 MiB (the default), at most 64 GiB.
const (
	MinFileLimit = 100 << 20
	MaxFileLimit = 64 << 30
)

// ParseSize reads a byte count: digits, optionally followed by KiB, MiB or
// GiB (any case, a space allowed), e.g. "104857600", "100MiB", "1 GiB".
func ParseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}} {
		if strings.HasSuffix(strings.ToLower(s), u.suffix) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KiB, MiB or GiB", v)
	}
	return n * mult, nil
}
