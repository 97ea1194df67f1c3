// Package envflag layers configuration sources the same way for both
// binaries: an optional KEY=VALUE file (the format systemd's EnvironmentFile
// reads), then the environment, then command-line flags, each overriding the
// last. Callers describe each setting once, as a Key.
package envflag
