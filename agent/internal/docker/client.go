package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"berth/shared/wire"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"
)

// Options configure a Client.
type Options struct {
	// Host is the daemon's address; it must be a unix:// socket.
	Host string
	// DataDir is the root of workspace data on the host. Every bind mount
	// source must lie strictly below it. It is created (0755) if missing.
	DataDir string
	// ServerID is written into the berth.server_id label of every container.
	ServerID string
}

// Client talks to the local dockerd. Create it with New; it is safe for
// concurrent use. Close releases its connections.
type Client struct {
	api      dockerAPI
	dataDir  string // absolute, symlinks resolved
	serverID string
	log      hclog.Logger

	mu       sync.Mutex
	sandbox  HostSandbox     // ProbeSandbox's findings
	networks map[string]bool // workspace networks known to exist

	sandboxExecs sync.Map // exec id → *sandboxExec, for execs running in runsc containers
}

// New checks opts, connects to the daemon (negotiating the API version) and
// pings it. It fails with ErrDocker when the daemon does not answer. logger
// is used as given (the caller names it); nil discards.
func New(ctx context.Context, opts Options, logger hclog.Logger) (*Client, error) {
	if !strings.HasPrefix(opts.Host, "unix://") {
		return nil, fmt.Errorf("%w: docker host %q: only a unix:// socket is allowed", ErrBadRequest, opts.Host)
	}
	if opts.ServerID == "" {
		return nil, fmt.Errorf("%w: server id is required", ErrBadRequest)
	}
	if !filepath.IsAbs(opts.DataDir) {
		return nil, fmt.Errorf("%w: data dir %q: must be an absolute path", ErrBadRequest, opts.DataDir)
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	dataDir, err := filepath.EvalSymlinks(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	api, err := client.NewClientWithOpts(client.WithHost(opts.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("%w: docker client: %w", ErrDocker, err)
	}
	c := &Client{api: api, dataDir: dataDir, serverID: opts.ServerID, log: logger,
		sandbox: DefaultHostSandbox(), networks: map[string]bool{}}
	if err := c.Ping(ctx); err != nil {
		_ = api.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the client's connections to the daemon.
func (c *Client) Close() error { return c.api.Close() }

// DataDir is the resolved data directory mounts are confined to.
func (c *Client) DataDir() string { return c.dataDir }

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.api.Ping(ctx); err != nil {
		return wrapErr(err, "ping docker")
	}
	return nil
}

// Info returns the daemon's facts, including its data root.
func (c *Client) Info(ctx context.Context) (wire.DockerInfo, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return wire.DockerInfo{}, wrapErr(err, "docker info")
	}
	return wire.DockerInfo{
		ServerVersion: info.ServerVersion,
		OS:            info.OperatingSystem,
		Architecture:  info.Architecture,
		Containers:    info.Containers,
		Images:        info.Images,
		MemoryTotal:   info.MemTotal,
		CPUs:          info.NCPU,
		DataRoot:      info.DockerRootDir,
	}, nil
}

// Counts returns how many containers (all, and running) and images the
// daemon holds, berth's or not. It exists because wire.DockerInfo has no
// running count.
func (c *Client) Counts(ctx context.Context) (containers, running, images int, err error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return 0, 0, 0, wrapErr(err, "docker info")
	}
	return info.Containers, info.ContainersRunning, info.Images, nil
}

// wrapErr classifies an SDK error into one of the package's sentinels with
// the typed checks of containerd/errdefs (which the SDK maps HTTP status
// codes to), and keeps the original error in the chain.
func wrapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	var sentinel error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		sentinel = ErrTimeout
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", msg, err)
	case cerrdefs.IsNotFound(err):
		sentinel = ErrNotFound
	case cerrdefs.IsConflict(err):
		sentinel = ErrConflict
	case cerrdefs.IsInvalidArgument(err):
		sentinel = ErrBadRequest
	default:
		sentinel = ErrDocker
	}
	return fmt.Errorf("%w: %s: %w", sentinel, msg, err)
}

func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }
