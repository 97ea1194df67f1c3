package version

// Version is the berth release; "dev" for untagged builds.
var Version = "dev"
