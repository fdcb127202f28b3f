package recipes

import (
	"fmt"
	"slices"
	"strings"
)

// Release is a Debian release kiln builds package bases for.
type Release struct {
	Codename string `json:"codename"` // trixie
	Version  string `json:"version"`  // Debian's major version: 13
	// Alias is the archive's name for the release when this list was
	// written (stable, oldstable). A recipe may name the alias; the bake
	// asks the mirror which release it stands for today.
	Alias   string `json:"alias"`
	Default bool   `json:"default"` // the base of a recipe that names none
	// Versions are the versions of the tabled software (Software) the
	// release ships, by Debian package name.
	Versions map[string]string `json:"versions"`
}

// Software is a package whose version matters to kiln's roles or to every
// image, tabled per release in Release.Versions.
type Software struct {
	Package string `json:"package"` // Debian binary package: postgresql
	Name    string `json:"name"`    // what users call it: PostgreSQL
	// Base is true for what every package base carries (kernel, systemd,
	// cloud-init, Python).
	Base bool `json:"base,omitempty"`
	// Roles are the built-in roles that install it or rely on its features.
	Roles []string `json:"roles,omitempty"`
}

// DefaultRelease is the release of DefaultBase: Debian's current stable.
const DefaultRelease = "trixie"

// software is what the release table tracks, in the order docs list it.
var software = []Software{
	{Package: "linux-image-cloud-amd64", Name: "Linux kernel", Base: true},
	{Package: "systemd", Name: "systemd", Base: true, Roles: []string{"app-host", "cron-runner", "job-runner"}},
	{Package: "cloud-init", Name: "cloud-init", Base: true},
	{Package: "python3", Name: "Python", Base: true},
	{Package: "postgresql", Name: "PostgreSQL", Roles: []string{"database"}},
	{Package: "haproxy", Name: "HAProxy", Roles: []string{"proxy"}},
	{Package: "dnsmasq", Name: "dnsmasq", Roles: []string{"network"}},
	{Package: "nftables", Name: "nftables", Roles: []string{"network"}},
}

// releases are the supported releases, newest first. Versions are what each
// release's archive serves (with its -updates and -security suites): the
// upstream major.minor (major alone where the upstream numbers majors only,
// like PostgreSQL), as Debian ships it. An integration test in builder asks
// each release's real package index and compares.
var releases = []Release{
	{Codename: "trixie", Version: "13", Alias: "stable", Default: true, Versions: map[string]string{
		"linux-image-cloud-amd64": "6.12",
		"systemd":                 "257",
		"cloud-init":              "25.1",
		"python3":                 "3.13",
		"postgresql":              "17",
		"haproxy":                 "3.0",
		"dnsmasq":                 "2.91",
		"nftables":                "1.1",
	}},
	{Codename: "bookworm", Version: "12", Alias: "oldstable", Versions: map[string]string{
		"linux-image-cloud-amd64": "6.1",
		"systemd":                 "252",
		"cloud-init":              "22.4",
		"python3":                 "3.11",
		"postgresql":              "15",
		"haproxy":                 "2.6",
		"dnsmasq":                 "2.90", // 2.89 at release; 12.x point releases brought 2.90
		"nftables":                "1.0",
	}},
}

// Releases lists the supported Debian releases, newest first.
func Releases() []Release {
	out := make([]Release, len(releases))
	for i, r := range releases {
		out[i] = r
		out[i].Versions = make(map[string]string, len(r.Versions))
		for k, v := range r.Versions {
			out[i].Versions[k] = v
		}
	}
	return out
}

// TrackedSoftware lists the packages the release table tracks.
func TrackedSoftware() []Software {
	out := make([]Software, len(software))
	for i, s := range software {
		out[i] = s
		out[i].Roles = append([]string(nil), s.Roles...)
	}
	return out
}

// LookupRelease returns the supported release with this codename.
func LookupRelease(codename string) (Release, bool) {
	for _, r := range Releases() {
		if r.Codename == codename {
			return r, true
		}
	}
	return Release{}, false
}

// IsReleaseAlias reports whether suite is an archive alias kiln accepts
// (stable, oldstable): the mirror says at bake time which release it is.
func IsReleaseAlias(suite string) bool {
	for _, r := range releases {
		if r.Alias == suite {
			return true
		}
	}
	return false
}

// releaseNames are the suites a recipe may name: codenames, then aliases.
func releaseNames() []string {
	var names []string
	for _, r := range releases {
		names = append(names, r.Codename)
	}
	for _, r := range releases {
		names = append(names, r.Alias)
	}
	return names
}

// SupportedReleases says in one phrase what a recipe may name:
// "debian:trixie (Debian 13, the default), debian:bookworm (Debian 12), and
// the aliases debian:stable and debian:oldstable".
func SupportedReleases() string {
	var aliases []string
	for _, r := range releases {
		aliases = append(aliases, "debian:"+r.Alias)
	}
	return SupportedCodenames() + ", and the aliases " + strings.Join(aliases, " and ")
}

// SupportedCodenames names the supported releases themselves:
// "debian:trixie (Debian 13, the default), debian:bookworm (Debian 12)".
func SupportedCodenames() string {
	var parts []string
	for _, r := range releases {
		s := fmt.Sprintf("debian:%s (Debian %s", r.Codename, r.Version)
		if r.Default {
			s += ", the default"
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, ", ")
}

// otherSuites are Debian names kiln knows it does not build, with why.
var otherSuites = map[string]string{
	"sid":      "Debian's unstable distribution, which changes daily",
	"unstable": "Debian's unstable distribution, which changes daily",
	"testing":  "Debian's next release, still in the making",
	"forky":    "Debian's next release (14), still in the making",
	"bullseye": "Debian 11, older than kiln supports",
	"buster":   "Debian 10, older than kiln supports",
	"stretch":  "Debian 9, older than kiln supports",
	"jessie":   "Debian 8, older than kiln supports",
}

// unsupportedRelease explains a suite kiln does not build, with the nearest
// supported name when it looks like a typo.
func unsupportedRelease(suite string) error {
	msg := fmt.Sprintf("unsupported Debian release %q", suite)
	if why, ok := otherSuites[suite]; ok {
		msg += " (" + why + ")"
	} else if s := closest(suite, releaseNames()); s != "" {
		msg += fmt.Sprintf(" (did you mean debian:%s?)", s)
	}
	return fmt.Errorf("%s; supported: %s", msg, SupportedReleases())
}

// RoleSoftware is one tabled package a role brings or relies on, with its
// version per release.
type RoleSoftware struct {
	Package  string            `json:"package"`
	Name     string            `json:"name"`
	Versions map[string]string `json:"versions"` // by release codename
}

// softwareOf returns the tabled software of a role, or of every image for
// role "" (the base).
func softwareOf(role string) []RoleSoftware {
	out := []RoleSoftware{}
	for _, s := range software {
		if role == "" && !s.Base || role != "" && !slices.Contains(s.Roles, role) {
			continue
		}
		rs := RoleSoftware{Package: s.Package, Name: s.Name, Versions: map[string]string{}}
		for _, r := range releases {
			rs.Versions[r.Codename] = r.Versions[s.Package]
		}
		out = append(out, rs)
	}
	return out
}

// BaseSoftware is the tabled software every package base carries, with its
// version per release.
func BaseSoftware() []RoleSoftware { return softwareOf("") }
