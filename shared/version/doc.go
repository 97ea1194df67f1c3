// Package version holds the build version of berth's binaries, set at link time
// with -ldflags "-X berth/shared/version.Version=...".
package version
