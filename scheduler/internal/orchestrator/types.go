package orchestrator

import (
	"time"

	"berth/scheduler/internal/registry"
)

// WorkspaceConfig is the create request's config (contract §5.1), decoded
// and validated by the compute API.
type WorkspaceConfig struct {
	Tier           string
	Repos          []string
	Environment    map[string]string
	Settings       registry.Settings // kept for the workspace's life
	GitCredentials string            // kept apart from Settings (registry.Credentials)
}

// CreateRequest is one POST /workspaces.
type CreateRequest struct {
	UserID      string
	SessionID   string
	WorkspaceID string // "" = generate a UUID4
	Config      WorkspaceConfig
}

// ExecRequest runs a shell command as the workspace user.
type ExecRequest struct {
	Command    string // run as bash -c Command
	WorkingDir string // "" = /home/dev
	Timeout    time.Duration
	User       string // "" = dev
	Stdin      []byte // fed to the command
}

// ExecResult is a finished command. StdoutDropped and StderrDropped count
// the output bytes beyond what the agent returns (wire.ExecOutputLimit per
// stream for Exec, wire.ExecRawStderrLimit of stderr for ExecRaw).
type ExecResult struct {
	ExitCode      int
	Stdout        []byte
	Stderr        []byte
	TimedOut      bool
	StdoutDropped int64
	StderrDropped int64
}
