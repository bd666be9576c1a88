// Package version holds the build's version, stamped at link time with
// -ldflags "-X github.com/nodepatch/nodepatch/pkg/version.Version=v1.2.3".
package version

// Version is "dev" unless the build stamps it.
var Version = "dev"
