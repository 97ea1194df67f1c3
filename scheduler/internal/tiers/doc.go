// Package tiers maps a workspace tier name to what it reserves. It decides
// one thing: Spec.Resources, the only translation of a tier into
// fleet.Resources (bandwidth "spec value or 100", contract §9.3), which
// create, move, scale-options and scale all use; and Spec.NeedsGPU.
//
// The catalogue is the built-in hardware-spec table of the compute contract
// (§9.1), used while berth runs without the podex API; with it, the
// podexapi package builds one from the API's hardware specs with New (and
// serves the built-in one until the API has answered). Architecture names
// are normalised (x86_64 → amd64, aarch64 → arm64), so the table and the
// servers agree.
package tiers
