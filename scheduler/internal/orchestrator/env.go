package orchestrator

import (
	"fmt"
	"slices"
	"sort"
)

// ReservedEnv are the variables berth sets in every workspace container
// (contract §9.3); a create's environment may not set them.
var ReservedEnv = []string{
	"WORKSPACE_ID", "USER_ID", "SESSION_ID", "WORKSPACE_TIER",
	"GIT_REPOS", "GIT_CREDENTIALS", "GIT_BRANCH", "GIT_USER_NAME", "GIT_USER_EMAIL",
}

// GPUEnv are the variables that expose GPUs to a container: only a GPU
// tier's environment may set them (berth sets them there when it does not).
var GPUEnv = []string{"NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"}

// EnvError is a create whose environment sets a variable it may not.
type EnvError struct {
	Key string
	GPU bool // a GPU variable on a tier without GPU; otherwise a reserved one
}

func (e *EnvError) Error() string {
	if e.GPU {
		return fmt.Sprintf("environment variable %s is only allowed on GPU tiers", e.Key)
	}
	return fmt.Sprintf("environment variable %s is reserved: the platform sets it", e.Key)
}

// checkEnvironment refuses a create whose environment sets a reserved
// variable, or a GPU variable on a tier without GPU. Keys are checked in
// order, so the error names the same key every time.
func checkEnvironment(env map[string]string, gpuTier bool) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case slices.Contains(ReservedEnv, k):
			return &EnvError{Key: k}
		case !gpuTier && slices.Contains(GPUEnv, k):
			return &EnvError{Key: k, GPU: true}
		}
	}
	return nil
}
