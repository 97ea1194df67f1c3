package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"berth/shared/envflag"
	"berth/shared/httpbudget"
)

// Config is everything an agent needs to run.
type Config struct {
	ServerID string            // unique server id; the first DNS SAN of its certificate
	Region   string            // placement region, e.g. "eu-central"
	Labels   map[string]string // placement labels

	Listen        string // mTLS API listen address
	AdvertiseAddr string // host:port the scheduler reaches the API at; gossiped

	// The mTLS identity (agent certificate) and gossip settings. The gossip
	// key (16, 24 or 32 bytes) is required: gossip is always encrypted; the
	// cluster label keeps other clusters' nodes out; Join lists the peers
	// (other agents or the scheduler) to contact at start.
	envflag.Peer

	DockerHost string // must be a unix:// socket: berth never opens a Docker TCP port
	DataDir    string // root of workspace data; every bind mount must lie under it

	// The workspace sandbox (README "Workspace sandbox"): egress policy
	// (open or none), disk quotas (loop or off) and the file the host
	// setup writes its runsc probe's outcome to.
	Egress     string
	DiskQuota  string
	RunscState string

	SampleInterval time.Duration // how often capacity is measured and re-gossiped
	FenceLease     time.Duration // cut off from scheduler and gossip this long → stop workspaces; 0 = off
	GPUType        string
	GPUCount       int

	// Streams (TTY and proxy): see the agent's server.StreamConfig.
	StreamWriteTimeout time.Duration // a TTY output write blocked this long ends the stream
	ProxyMaxConns      int           // proxied requests open at once per container
	ProxyHeaderTimeout time.Duration // wait for a container app's answer headers
	ProxyIdleTimeout   time.Duration // close a proxied connection idle this long

	// HTTP bounds every connection of the API (BERTH_HTTP_*: header, body,
	// write, idle and stall timeouts, header size; README "Request
	// budgets").
	HTTP httpbudget.Timeouts

	LogLevel string
	LogJSON  bool
}

// Default returns a configuration with every optional field set.
func Default() Config {
	return Config{
		Listen:         ":7443",
		Peer:           envflag.Peer{GossipBind: "0.0.0.0:7946", ClusterLabel: "berth"},
		DockerHost:     "unix:///var/run/docker.sock",
		DataDir:        "/var/lib/berth",
		Egress:         "open",
		DiskQuota:      "loop",
		RunscState:     "/run/berth/runsc-state",
		SampleInterval: 2 * time.Second,
		FenceLease:     30 * time.Second,

		StreamWriteTimeout: 30 * time.Second,
		ProxyMaxConns:      256,
		ProxyHeaderTimeout: 30 * time.Second,
		ProxyIdleTimeout:   time.Hour,
		HTTP:               httpbudget.Default(),

		LogLevel: "info",
		Labels:   map[string]string{},
	}
}

var serverIDRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Validate reports every problem at once, so an operator fixes them in one go.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !serverIDRe.MatchString(c.ServerID) {
		add("server id %q: want 1-63 lower-case letters, digits, '.' or '-' (BERTH_SERVER_ID)", c.ServerID)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen address %q: %v", c.Listen, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			add("advertise address %q: %v", c.AdvertiseAddr, err)
		}
	}
	for name, path := range map[string]string{"tls cert": c.TLSCert, "tls key": c.TLSKey, "tls ca": c.TLSCA} {
		if path == "" {
			add("%s: required (agents serve only mTLS)", name)
		}
	}
	if _, _, err := net.SplitHostPort(c.GossipBind); err != nil {
		add("gossip bind %q: %v", c.GossipBind, err)
	}
	switch len(c.GossipKey) {
	case 16, 24, 32:
	default:
		add("gossip key: want 16, 24 or 32 bytes, got %d (BERTH_GOSSIP_KEY or BERTH_GOSSIP_KEY_FILE)", len(c.GossipKey))
	}
	if c.ClusterLabel == "" {
		add("cluster label: required")
	}
	if c.Egress != "open" && c.Egress != "none" {
		add("egress %q: want open or none (BERTH_EGRESS)", c.Egress)
	}
	if c.DiskQuota != "loop" && c.DiskQuota != "off" {
		add("disk quota %q: want loop or off (BERTH_DISK_QUOTA)", c.DiskQuota)
	}
	if !strings.HasPrefix(c.DockerHost, "unix://") {
		add("docker host %q: only a unix:// socket is allowed", c.DockerHost)
	}
	if !filepath.IsAbs(c.DataDir) {
		add("data dir %q: must be an absolute path", c.DataDir)
	}
	if c.SampleInterval < 100*time.Millisecond {
		add("sample interval %s: must be at least 100ms", c.SampleInterval)
	}
	if c.FenceLease != 0 && c.FenceLease < time.Second {
		add("fence lease %s: 0 (off) or at least 1s", c.FenceLease)
	}
	if c.GPUCount < 0 {
		add("gpu count %d: must not be negative", c.GPUCount)
	}
	if c.StreamWriteTimeout < time.Second {
		add("stream write timeout %s: must be at least 1s", c.StreamWriteTimeout)
	}
	if c.ProxyMaxConns < 1 {
		add("proxy max conns %d: must be at least 1", c.ProxyMaxConns)
	}
	if c.ProxyHeaderTimeout < time.Second {
		add("proxy header timeout %s: must be at least 1s", c.ProxyHeaderTimeout)
	}
	if c.ProxyIdleTimeout < time.Second {
		add("proxy idle timeout %s: must be at least 1s", c.ProxyIdleTimeout)
	}
	if err := c.HTTP.Validate(httpbudget.EnvPrefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Load builds a Config from Default(), then the file named by --config or
// BERTH_CONFIG (KEY=VALUE lines with the same names as the environment, the
// format systemd's EnvironmentFile reads), then the environment, then flags.
func Load(args []string, getenv func(string) string) (Config, error) {
	c := Default()
	_, err := envflag.Load("agent", args, getenv, "BERTH_CONFIG", c.keys())
	return c, err
}

// Usage lists the settings.
func Usage() string { c := Default(); return envflag.Usage(c.keys()) }

func (c *Config) keys() []envflag.Key {
	keys := append(envflag.PeerKeys(&c.Peer, "agent"), httpbudget.Keys(&c.HTTP)...)
	return append(keys, []envflag.Key{
		{Env: "BERTH_SERVER_ID", Flag: "server-id", Help: "unique server id", Set: envflag.String(&c.ServerID)},
		{Env: "BERTH_REGION", Flag: "region", Help: "placement region", Set: envflag.String(&c.Region)},
		{Env: "BERTH_LABELS", Flag: "labels", Help: "placement labels, k=v,k=v", Set: func(v string) (err error) {
			c.Labels, err = envflag.ParseLabels(v)
			return err
		}},
		{Env: "BERTH_LISTEN", Flag: "listen", Help: "mTLS API listen address", Set: envflag.String(&c.Listen)},
		{Env: "BERTH_ADVERTISE_ADDR", Flag: "advertise-addr", Help: "host:port the scheduler reaches this agent at", Set: envflag.String(&c.AdvertiseAddr)},
		{Env: "BERTH_DOCKER_HOST", Flag: "docker-host", Help: "local Docker socket (unix://)", Set: envflag.String(&c.DockerHost)},
		{Env: "BERTH_DATA_DIR", Flag: "data-dir", Help: "workspace data root", Set: envflag.String(&c.DataDir)},
		{Env: "BERTH_EGRESS", Flag: "egress", Help: "workspace egress: open or none", Set: envflag.String(&c.Egress)},
		{Env: "BERTH_DISK_QUOTA", Flag: "disk-quota", Help: "storage_gb quotas: loop (loop-mounted ext4 per home) or off", Set: envflag.String(&c.DiskQuota)},
		{Env: "BERTH_RUNSC_STATE", Flag: "runsc-state", Help: "file holding the host setup's runsc probe outcome", Set: envflag.String(&c.RunscState)},
		{Env: "BERTH_SAMPLE_INTERVAL", Flag: "sample-interval", Help: "capacity sampling period", Set: envflag.Duration(&c.SampleInterval)},
		{Env: "BERTH_FENCE_LEASE", Flag: "fence-lease", Help: "stop workspaces after this long without scheduler and gossip (0 = off)", Set: envflag.Duration(&c.FenceLease)},
		{Env: "BERTH_GPU_TYPE", Flag: "gpu-type", Help: "GPU model of this host", Set: envflag.String(&c.GPUType)},
		{Env: "BERTH_GPU_COUNT", Flag: "gpu-count", Help: "number of GPUs", Set: envflag.Int(&c.GPUCount)},
		{Env: "BERTH_STREAM_WRITE_TIMEOUT", Flag: "stream-write-timeout", Help: "end a terminal stream whose output write blocks this long", Set: envflag.Duration(&c.StreamWriteTimeout)},
		{Env: "BERTH_PROXY_MAX_CONNS", Flag: "proxy-max-conns", Help: "proxied requests open at once per container", Set: envflag.Int(&c.ProxyMaxConns)},
		{Env: "BERTH_PROXY_HEADER_TIMEOUT", Flag: "proxy-header-timeout", Help: "wait this long for a container app's answer headers", Set: envflag.Duration(&c.ProxyHeaderTimeout)},
		{Env: "BERTH_PROXY_IDLE_TIMEOUT", Flag: "proxy-idle-timeout", Help: "close a proxied connection idle this long", Set: envflag.Duration(&c.ProxyIdleTimeout)},
		{Env: "BERTH_LOG_LEVEL", Flag: "log-level", Help: "trace, debug, info, warn, error", Set: envflag.String(&c.LogLevel)},
		{Env: "BERTH_LOG_JSON", Flag: "log-json", Help: "JSON logs (true/false)", Set: func(v string) (err error) {
			c.LogJSON, err = strconv.ParseBool(v)
			return err
		}},
	}...)
}
