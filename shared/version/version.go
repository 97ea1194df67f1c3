// Package version holds the build version of berth's binaries, set at link time
// with -ldflags "-X berth/shared/version.Version=...".
package version

// Version is the berth release; "dev" for untagged builds.
var Version = "dev"
