package wire

import "strings"

// NormalizeArch maps the spellings of a CPU architecture to GOARCH names
// (x86_64 → amd64, aarch64 → arm64), so agents, tiers and placement agree.
func NormalizeArch(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	switch a {
	case "x86_64", "x86-64", "x64":
		return "amd64"
	case "aarch64", "armv8":
		return "arm64"
	}
	return a
}
