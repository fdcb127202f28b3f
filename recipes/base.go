package recipes

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// BaseKind says where an image's base comes from.
type BaseKind int

const (
	// BasePackages is a base built from distribution packages (debian:trixie).
	BasePackages BaseKind = iota
	// BaseFile is a disk image on the local file system.
	BaseFile
	// BaseURL is a disk image downloaded over HTTP(S) and checked by digest.
	BaseURL
	// BaseOCI is a disk image pulled from an OCI registry.
	BaseOCI
)

// Base is a parsed recipe base.
type Base struct {
	Kind   BaseKind
	Distro string // BasePackages: "debian"
	Suite  string // BasePackages: a supported release ("trixie") or an alias ("stable"), see IsAlias
	Path   string // BaseFile
	URL    string // BaseURL, without the fragment
	SHA256 string // BaseURL: expected digest of the image, or of the sums file's entry
	Sums   string // BaseURL: URL of a SHA256SUMS file to take the digest from
	Ref    string // BaseOCI: registry reference without the oci:// scheme
}

// Distros kiln can build from packages; their releases are in releases.go.
var packageDistros = map[string]bool{"debian": true}

// ParseBase reads a recipe's base field.
func ParseBase(s string) (Base, error) {
	switch {
	case s == "":
		return Base{}, fmt.Errorf("missing base (e.g. %s, ./base.qcow2, https://example.com/image.qcow2#sha256=<hex>, oci://registry.example.com/repo:tag)", DefaultBase)
	case strings.HasPrefix(s, "oci://"):
		ref := strings.TrimPrefix(s, "oci://")
		host, _, _ := strings.Cut(ref, "/")
		if !strings.Contains(ref, "/") || !(strings.ContainsAny(host, ".:") || host == "localhost") {
			return Base{}, fmt.Errorf("invalid OCI reference %q: want oci://registry.example.com/repo:tag or oci://registry.example.com/repo@sha256:<hex>, with the registry host written out", s)
		}
		if _, err := name.ParseReference(ref); err != nil {
			return Base{}, fmt.Errorf("invalid OCI reference %q: %s", s, strings.TrimPrefix(err.Error(), "could not parse reference: "))
		}
		return Base{Kind: BaseOCI, Ref: ref}, nil
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		return parseURLBase(s)
	case strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || strings.HasPrefix(s, "/") ||
		strings.HasSuffix(s, ".qcow2") || strings.HasSuffix(s, ".img") || strings.HasSuffix(s, ".raw"):
		return Base{Kind: BaseFile, Path: s}, nil
	}
	distro, suite, ok := strings.Cut(s, ":")
	if !ok || suite == "" {
		return Base{}, fmt.Errorf("invalid base %q (want debian:<release> like %s, a ./path.qcow2, an https:// URL with #sha256=, or oci://)", s, DefaultBase)
	}
	if !packageDistros[distro] {
		return Base{}, fmt.Errorf("kiln builds package bases for debian only, not %q; use a cloud image file or URL as base instead", distro)
	}
	if _, ok := LookupRelease(suite); !ok && !IsReleaseAlias(suite) {
		return Base{}, unsupportedRelease(suite)
	}
	return Base{Kind: BasePackages, Distro: distro, Suite: suite}, nil
}

func parseURLBase(s string) (Base, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Base{}, fmt.Errorf("invalid base URL %q", s)
	}
	frag := u.Fragment
	u.Fragment = ""
	b := Base{Kind: BaseURL, URL: u.String()}
	switch {
	case strings.HasPrefix(frag, "sha256="):
		b.SHA256 = strings.ToLower(strings.TrimPrefix(frag, "sha256="))
		if !sha256RE.MatchString(b.SHA256) {
			return Base{}, fmt.Errorf("base URL checksum %q is not 64 hex digits", strings.TrimPrefix(frag, "sha256="))
		}
	case strings.HasPrefix(frag, "sha256sums="):
		b.Sums = strings.TrimPrefix(frag, "sha256sums=")
		if su, err := url.Parse(b.Sums); err != nil || (su.Scheme != "http" && su.Scheme != "https") {
			return Base{}, fmt.Errorf("sha256sums %q is not an http(s) URL", b.Sums)
		}
	default:
		return Base{}, fmt.Errorf("a base URL needs a checksum: append #sha256=<64 hex digits> or #sha256sums=<URL of a SHA256SUMS file>")
	}
	return b, nil
}

// IsAlias reports a package base named by an archive alias (debian:stable):
// the mirror's Release file says at bake time which release it is.
func (b Base) IsAlias() bool { return b.Kind == BasePackages && IsReleaseAlias(b.Suite) }

func (b Base) String() string {
	switch b.Kind {
	case BasePackages:
		return b.Distro + ":" + b.Suite
	case BaseFile:
		return b.Path
	case BaseURL:
		return b.URL
	case BaseOCI:
		return "oci://" + b.Ref
	}
	return "?"
}
