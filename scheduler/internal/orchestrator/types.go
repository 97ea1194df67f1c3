package orchestrator

import (
	"encoding/json"
	"time"
)

// WorkspaceConfig is the create request's config (contract §5.1), decoded
// and validated by the compute API. Fields the contract says are ignored are
// kept in Raw only.
type WorkspaceConfig struct {
	Tier             string
	Repos            []string
	GitBranch        string
	GitCredentials   string
	GitName          string
	GitEmail         string
	Environment      map[string]string
	BaseImage        string
	RegionPreference string
	Architecture     string // used only when BERTH honours it (see tiers); informational
	Raw              json.RawMessage
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

// ExecResult is a finished command.
type ExecResult struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
	TimedOut bool
}
