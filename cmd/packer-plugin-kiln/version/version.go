// Package version is the plugin's version, as Packer reads it from
// `packer-plugin-kiln describe`. Release builds set Version and clear
// VersionPrerelease with -ldflags -X (see the Makefile's plugin-release).
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the plugin's semantic version.
	Version = "0.1.0"
	// VersionPrerelease marks a development build ("dev"); empty for a
	// release.
	VersionPrerelease = "dev"
	// VersionMetadata is build metadata (after a +), usually empty.
	VersionMetadata = ""

	// PluginVersion is what the plugin set reports.
	PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
)
