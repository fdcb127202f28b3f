package manifest

import (
	"path/filepath"
	"strings"
)

// SchemaVersion is the layout Write produces.
const SchemaVersion = 1

// Manifest describes a baked image: what went in, and what came out.
type Manifest struct {
	SchemaVersion int        `json:"schemaVersion"`
	Kiln          Kiln       `json:"kiln"`
	Recipe        Recipe     `json:"recipe"`
	Base          Base       `json:"base"`
	OS            OS         `json:"os"`
	Disk          Disk       `json:"disk"`
	Packages      []Package  `json:"packages"`
	Artifacts     []Artifact `json:"artifacts"`
	// Checks are the recipe's and roles' checks, so kiln test and fleet
	// health probes can run them with only the image at hand.
	Checks []Check `json:"checks"`
	Build  Build   `json:"build"`
}

// Kiln names the kiln that built the image.
type Kiln struct {
	Version     string `json:"version"`
	ImageLayout string `json:"imageLayout"`
}

// Recipe identifies the recipe, so an instance seed can be made again from
// it (never its secrets: those are references, resolved per seed).
type Recipe struct {
	Name string `json:"name"`
	// File is the recipe file: relative to the manifest's directory when
	// the recipe lies below it or beside it, absolute otherwise.
	File string `json:"file"`
	// Digest covers the whole recipe (bake and boot sections, checks):
	// the recipe at File is the one the image was made from only when its
	// digest is the same.
	Digest string `json:"digest"`
	// ImageKey covers what shapes the image only; boot-only changes keep it.
	ImageKey string   `json:"imageKey"`
	Roles    []string `json:"roles"`
	// Lock is the digest of the package lock the bake installed exactly
	// (LockPath); empty when none was used.
	Lock string `json:"lock,omitempty"`
}

// Base identifies what the image was built from.
type Base struct {
	Ref  string `json:"ref"`
	Kind string `json:"kind"` // packages, image
	// Suite is the Debian release a package base was built from, by
	// codename: what Ref names, with an alias (debian:stable) resolved
	// through the mirror's Release file at bake time.
	Suite   string   `json:"suite,omitempty"`
	Key     string   `json:"key,omitempty"`     // packages: cache key of the base's inputs
	Digest  string   `json:"digest,omitempty"`  // image: sha256 of the base image
	Sources []string `json:"sources,omitempty"` // packages: apt sources
	// Releases are the Release files apt read for the package base (and
	// the packages the bake added): the state of the archive the image's
	// packages came from, which a snapshot mirror can serve again.
	Releases []Release `json:"releases,omitempty"`
}

// Base kinds.
const (
	BasePackages = "packages"
	BaseImage    = "image"
)

// OS is what the image runs.
type OS struct {
	Distro    string `json:"distro"`
	Release   string `json:"release"`
	Kernel    string `json:"kernel"`
	CloudInit string `json:"cloudInit"`
	Systemd   string `json:"systemd"`
}

// Disk describes the disk.
type Disk struct {
	Format      string   `json:"format"`      // qcow2, raw
	Compression string   `json:"compression"` // zstd, zlib, none
	Firmware    []string `json:"firmware"`    // bios, uefi
	VirtualSize int64    `json:"virtualSize"` // bytes the guest sees
	FileSize    int64    `json:"fileSize"`    // bytes of the image file
	RootUUID    string   `json:"rootUUID,omitempty"`
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// Artifact is one file the build produced.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // "sha256:<hex>"
}

// Build records how the build ran (not part of any digest).
type Build struct {
	Mode     string   `json:"mode"` // offline, vm
	Duration Duration `json:"duration"`
	// SourceDateEpoch is the time every timestamp in the image is clamped
	// to; a rebuild sets SOURCE_DATE_EPOCH to it, or derives it again.
	SourceDateEpoch int64 `json:"sourceDateEpoch"`
	// SourceDateEpochFrom says where it came from (EpochFrom*); empty in
	// manifests of kiln versions that did not record it.
	SourceDateEpochFrom string `json:"sourceDateEpochFrom,omitempty"`
}

// Where a build's SourceDateEpoch came from.
const (
	// EpochFromEnvironment: $SOURCE_DATE_EPOCH, as the builder was given it.
	EpochFromEnvironment = "environment"
	// EpochFromPackages: the newest build date of the image's packages.
	EpochFromPackages = "packages"
	// EpochFromDefault: neither; the Unix epoch.
	EpochFromDefault = "default"
)

// Check is one probe of a running instance. Exactly one of HTTP, TCP and
// Command is set. HTTP and TCP probe from outside the guest (through a
// forwarded port, or the instance's address); Command runs inside it.
type Check struct {
	Name    string        `json:"name"`
	HTTP    *HTTPCheck    `json:"http,omitempty"`
	TCP     *TCPCheck     `json:"tcp,omitempty"`
	Command *CommandCheck `json:"command,omitempty"`
	// Timeout is how long to keep retrying before the check fails.
	Timeout Duration `json:"timeout"`
	// Origin is the recipe path that asked for the check ("checks[0]",
	// "roles[1].database").
	Origin string `json:"origin,omitempty"`
	// NeedsBoot marks a check that means something only on an instance
	// made with the recipe's own seed: its role (or the recipe) configures
	// users, files or secrets at first boot.
	NeedsBoot bool `json:"needsBoot,omitempty"`
}

// HTTPCheck expects Status (and Contains in the body) from GET Path on Port.
type HTTPCheck struct {
	Port     int    `json:"port"`
	Path     string `json:"path"`
	Status   int    `json:"status"`
	Contains string `json:"contains,omitempty"`
}

// TCPCheck expects Port to accept a connection.
type TCPCheck struct {
	Port int `json:"port"`
}

// CommandCheck expects Run, a shell command run as root in the guest, to
// exit with ExitCode (and print Contains).
type CommandCheck struct {
	Run      string `json:"run"`
	ExitCode int    `json:"exitCode"`
	Contains string `json:"contains,omitempty"`
}

// PathFor is where the manifest of an image lives: beside it,
// web.qcow2 -> web.manifest.json.
func PathFor(image string) string {
	return strings.TrimSuffix(image, filepath.Ext(image)) + ".manifest.json"
}

// Package returns the version of the named installed package, or "".
func (m *Manifest) Package(name string) string {
	for _, p := range m.Packages {
		if p.Name == name {
			return p.Version
		}
	}
	return ""
}

// RecipePath is where the recipe named in a manifest at manifestPath is,
// resolving a relative File against the manifest's directory; "" when the
// manifest names no file.
func (m *Manifest) RecipePath(manifestPath string) string {
	f := m.Recipe.File
	if f == "" || filepath.IsAbs(f) {
		return f
	}
	return filepath.Join(filepath.Dir(manifestPath), f)
}

// RelativeFile is how File records recipe for a manifest written at
// manifestPath: relative when the recipe is reachable without leaving the
// manifest's directory tree upwards more than it must, absolute otherwise.
func RelativeFile(recipe, manifestPath string) string {
	if recipe == "" {
		return ""
	}
	abs, err := filepath.Abs(recipe)
	if err != nil {
		return recipe
	}
	dir, err := filepath.Abs(filepath.Dir(manifestPath))
	if err != nil {
		return abs
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return abs
	}
	return rel
}
