package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth/shared/envflag"
)

// Config is everything the scheduler needs.
type Config struct {
	Listen  string // compute API, admin API and panel (HTTP; put TLS in front in production)
	DataDir string // holds berth.db

	// The scheduler's client identity towards agents, and its place in the
	// gossip pool (it listens as an observer; gossip is off without a key).
	envflag.Peer
	ClusterID string // labels this scheduler's containers; reconciliation touches no others

	ServiceToken string // INTERNAL_SERVICE_TOKEN: podex services; empty → 500 on every authenticated route
	AdminToken   string // BERTH_ADMIN_TOKEN: admin API and panel

	WorkspaceServers string   // COMPUTE_WORKSPACE_SERVERS: JSON list seeded into the registry at start
	APIBaseURL       string   // COMPUTE_API_BASE_URL: reverse calls to the podex API; empty = standalone
	Region           string   // COMPUTE_REGION (or COMPUTE_COMPUTE_REGION)
	CORSOrigins      []string // COMPUTE_CORS_ORIGINS
	WorkspaceImage   string   // COMPUTE_WORKSPACE_IMAGE: fallback image
	DockerRuntime    string   // COMPUTE_DOCKER_RUNTIME: "" = the daemon's default (runc)
	Strategy         string   // BERTH_PLACEMENT_STRATEGY: spread, best_fit, affinity, round_robin
	CPUOvercommit    float64  // BERTH_CPU_OVERCOMMIT: vCPUs placeable per real core (memory is never overcommitted)
	FileLimit        int64    // BERTH_FILE_LIMIT: the largest file …/files/content reads or writes, bytes

	ReconcileInterval time.Duration // BERTH_RECONCILE_INTERVAL: registry vs containers, per server
	OrphanGrace       time.Duration // BERTH_ORPHAN_GRACE: unrecorded containers are removed after this
	ServerLostGrace   time.Duration // BERTH_SERVER_LOST_GRACE: a server down this long loses its workspaces
	HomeMoveTimeout   time.Duration // BERTH_HOME_MOVE_TIMEOUT: one copy of a home directory between hosts
	IdleTimeout       time.Duration // BERTH_IDLE_TIMEOUT: stop a running workspace unused this long; 0 = never
	IdleCPUPercent    float64       // BERTH_IDLE_CPU_PERCENT: CPU use (% of a core) that counts as use; 0 = never

	ShutdownTimeout time.Duration
	LogLevel        string
	LogJSON         bool
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen:          ":3003",
		DataDir:         "/var/lib/berth-scheduler",
		Peer:            envflag.Peer{GossipBind: "0.0.0.0:7946", ClusterLabel: "berth"},
		ClusterID:       "berth",
		WorkspaceImage:  "berth/workspace:dev",
		Strategy:        "spread",
		CORSOrigins:     []string{"http://localhost:3000"},
		CPUOvercommit:   1,
		FileLimit:       MinFileLimit,
		ShutdownTimeout: 60 * time.Second,

		ReconcileInterval: 10 * time.Second,
		OrphanGrace:       10 * time.Minute,
		ServerLostGrace:   time.Minute,
		HomeMoveTimeout:   2 * time.Hour,
		IdleTimeout:       24 * time.Hour,
		IdleCPUPercent:    5,
		LogLevel:          "info",
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen address %q: %v (--listen, BERTH_LISTEN)", c.Listen, err)
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
	if c.IdleTimeout < 0 || c.IdleCPUPercent < 0 {
		add("idle timeout %s and idle cpu percent %g: must not be negative", c.IdleTimeout, c.IdleCPUPercent)
	}
	if c.HomeMoveTimeout < time.Minute {
		add("home move timeout %s: at least 1m", c.HomeMoveTimeout)
	}
	if c.CPUOvercommit < 1 || c.CPUOvercommit > 64 {
		add("cpu overcommit %g: want 1 to 64", c.CPUOvercommit)
	}
	if c.ClusterID == "" {
		add("cluster id: required (BERTH_CLUSTER_ID)")
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
	return append(envflag.PeerKeys(&c.Peer, "scheduler client"), []envflag.Key{
		{Env: "BERTH_LISTEN", Flag: "listen", Help: "HTTP listen address", Set: envflag.String(&c.Listen)},
		{Env: "BERTH_DATA_DIR", Flag: "data-dir", Help: "directory of the SQLite registry", Set: envflag.String(&c.DataDir)},
		{Env: "BERTH_CLUSTER_ID", Flag: "cluster-id", Help: "id labelling this scheduler's containers", Set: envflag.String(&c.ClusterID)},
		{Env: "INTERNAL_SERVICE_TOKEN", Flag: "service-token", Help: "token of the podex services", Set: envflag.String(&c.ServiceToken)},
		{Env: "BERTH_ADMIN_TOKEN", Flag: "admin-token", Help: "token of the admin API and panel", Set: envflag.String(&c.AdminToken)},
		{Env: "COMPUTE_WORKSPACE_SERVERS", Flag: "workspace-servers", Help: "JSON list of servers to register at start", Set: envflag.String(&c.WorkspaceServers)},
		{Env: "COMPUTE_API_BASE_URL", Flag: "api-base-url", Help: "podex API base URL (reverse calls)", Set: envflag.String(&c.APIBaseURL)},
		{Env: "COMPUTE_COMPUTE_REGION", Flag: "compute-region", Help: "region filter (alias of COMPUTE_REGION)", Set: envflag.String(&c.Region)},
		{Env: "COMPUTE_REGION", Flag: "region", Help: "region filter of the server list", Set: envflag.String(&c.Region)},
		{Env: "COMPUTE_CORS_ORIGINS", Flag: "cors-origins", Help: "allowed CORS origins (JSON list or comma list)", Set: func(v string) error {
			c.CORSOrigins = envflag.SplitList(strings.Trim(strings.ReplaceAll(v, `"`, ""), "[]"))
			return nil
		}},
		{Env: "COMPUTE_WORKSPACE_IMAGE", Flag: "workspace-image", Help: "fallback workspace image", Set: envflag.String(&c.WorkspaceImage)},
		{Env: "COMPUTE_DOCKER_RUNTIME", Flag: "docker-runtime", Help: "container runtime (empty: daemon default)", Set: envflag.String(&c.DockerRuntime)},
		{Env: "BERTH_CPU_OVERCOMMIT", Flag: "cpu-overcommit", Help: "vCPUs placeable per real core", Set: func(v string) (err error) {
			c.CPUOvercommit, err = strconv.ParseFloat(v, 64)
			return err
		}},
		{Env: "BERTH_FILE_LIMIT", Flag: "file-limit", Help: "largest file read or written through files/content: bytes, or with KiB, MiB, GiB", Set: func(v string) (err error) {
			c.FileLimit, err = ParseSize(v)
			return err
		}},
		{Env: "BERTH_PLACEMENT_STRATEGY", Flag: "strategy", Help: "spread, best_fit, affinity, round_robin", Set: envflag.String(&c.Strategy)},
		{Env: "BERTH_RECONCILE_INTERVAL", Flag: "reconcile-interval", Help: "registry vs containers, per server", Set: durationSetter(&c.ReconcileInterval)},
		{Env: "BERTH_ORPHAN_GRACE", Flag: "orphan-grace", Help: "remove unrecorded containers after", Set: durationSetter(&c.OrphanGrace)},
		{Env: "BERTH_IDLE_TIMEOUT", Flag: "idle-timeout", Help: "stop a running workspace unused this long (0: never; timeout_hours at create wins)", Set: durationSetter(&c.IdleTimeout)},
		{Env: "BERTH_IDLE_CPU_PERCENT", Flag: "idle-cpu-percent", Help: "CPU use, % of one core, that counts as use for the idle stop (0: never)", Set: func(v string) (err error) {
			c.IdleCPUPercent, err = strconv.ParseFloat(v, 64)
			return err
		}},
		{Env: "BERTH_HOME_MOVE_TIMEOUT", Flag: "home-move-timeout", Help: "bound on one copy of a home between hosts", Set: durationSetter(&c.HomeMoveTimeout)},
		{Env: "BERTH_SERVER_LOST_GRACE", Flag: "server-lost-grace", Help: "a server down this long loses its workspaces", Set: durationSetter(&c.ServerLostGrace)},
		{Env: "COMPUTE_SHUTDOWN_TIMEOUT", Flag: "shutdown-timeout", Help: "graceful shutdown limit, seconds", Set: func(v string) (err error) {
			c.ShutdownTimeout, err = parseSeconds(v)
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

func durationSetter(p *time.Duration) func(string) error {
	return func(v string) (err error) {
		*p, err = parseSeconds(v)
		return err
	}
}

func parseSeconds(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	d, err := time.ParseDuration(v + "s")
	if err != nil {
		return 0, fmt.Errorf("want seconds or a duration: %w", err)
	}
	return d, nil
}
