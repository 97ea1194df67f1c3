// Package config is the scheduler's configuration: Default(), Load() (an
// optional KEY=VALUE file, the environment, then flags) and Validate(). The
// podex compute service's variable names are accepted where they exist
// (INTERNAL_SERVICE_TOKEN, COMPUTE_*), so berth drops into its place.
package config
