package registry

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Ref names an image: a repository in a registry with a tag or digest, or
// an image in an OCI image layout directory.
//
//	registry.example.com/team/web:1.2      a registry (also docker://… and oci://…)
//	registry.example.com/team/web@sha256:…
//	oci:./store:web                         an OCI layout directory, tag "web"
//	oci:./store@sha256:…                    … by digest
type Ref struct {
	// Remote is set for a registry reference.
	Remote name.Reference
	// Layout is the directory of an OCI image layout reference.
	Layout string
	// Tag or Digest within the layout ("latest" when neither is given).
	Tag    string
	Digest v1.Hash

	raw string
}

// String is the reference as the user wrote it.
func (r Ref) String() string { return r.raw }

// IsLayout reports whether r names an OCI layout directory.
func (r Ref) IsLayout() bool { return r.Remote == nil }

// Identifier is the tag or digest part.
func (r Ref) Identifier() string {
	if r.Remote != nil {
		return r.Remote.Identifier()
	}
	if r.Digest.Hex != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// ByDigest reports whether r pins a digest.
func (r Ref) ByDigest() bool {
	if r.Remote != nil {
		_, ok := r.Remote.(name.Digest)
		return ok
	}
	return r.Digest.Hex != ""
}

// RefError is a reference that cannot be parsed.
type RefError struct {
	Ref string
	Msg string
}

func (e *RefError) Error() string { return fmt.Sprintf("image reference %q: %s", e.Ref, e.Msg) }

// ParseRef reads an image reference (see Ref). Whether plain HTTP may be
// used is the Client's business (Options.Insecure), not the reference's.
func ParseRef(s string) (Ref, error) {
	raw := s
	if strings.TrimSpace(s) != s || s == "" {
		return Ref{}, &RefError{raw, "empty, or with surrounding spaces"}
	}
	switch {
	case strings.HasPrefix(s, "oci://"):
		return parseRemote(raw, strings.TrimPrefix(s, "oci://"))
	case strings.HasPrefix(s, "docker://"):
		return parseRemote(raw, strings.TrimPrefix(s, "docker://"))
	case strings.HasPrefix(s, "oci:"):
		return parseLayout(raw, strings.TrimPrefix(s, "oci:"))
	case strings.Contains(s, "://"):
		return Ref{}, &RefError{raw, "unknown scheme; use REGISTRY/REPO:TAG, oci://REGISTRY/REPO:TAG or oci:DIR:TAG"}
	}
	return parseRemote(raw, s)
}

func parseRemote(raw, s string) (Ref, error) {
	// "web:1" has no host at all (name.ParseReference reads it as
	// Docker Hub's library/web), however much "web:1" looks like host:port.
	if !strings.Contains(s, "/") || !strings.Contains(strings.SplitN(s, "/", 2)[0], ".") && !strings.Contains(strings.SplitN(s, "/", 2)[0], ":") &&
		strings.SplitN(s, "/", 2)[0] != "localhost" {
		// name.ParseReference would quietly add Docker Hub; kiln wants the
		// registry spelled out, so an image never lands somewhere unintended.
		return Ref{}, &RefError{raw, "no registry host; write it out, e.g. registry.example.com/" + s + " (or oci:DIR:TAG for a local layout)"}
	}
	r, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		// StrictValidation refuses a missing tag; the default is "latest".
		r2, err2 := name.ParseReference(s)
		if err2 != nil {
			return Ref{}, &RefError{raw, strings.TrimPrefix(err2.Error(), "could not parse reference: ")}
		}
		r = r2
	}
	return Ref{Remote: r, raw: raw}, nil
}

func parseLayout(raw, s string) (Ref, error) {
	ref := Ref{raw: raw, Tag: "latest"}
	dir := s
	if i := strings.LastIndex(s, "@"); i >= 0 {
		h, err := v1.NewHash(s[i+1:])
		if err != nil {
			return Ref{}, &RefError{raw, "bad digest: " + err.Error()}
		}
		dir, ref.Digest, ref.Tag = s[:i], h, ""
	} else if i := strings.LastIndex(s, ":"); i >= 0 && !strings.Contains(s[i+1:], "/") {
		dir, ref.Tag = s[:i], s[i+1:]
		if _, err := name.NewTag("example.com/x:"+ref.Tag, name.StrictValidation); err != nil || ref.Tag == "" {
			return Ref{}, &RefError{raw, fmt.Sprintf("bad tag %q (letters, digits, _ . -, at most 128)", ref.Tag)}
		}
	}
	if dir == "" {
		return Ref{}, &RefError{raw, "no directory; write oci:DIR:TAG"}
	}
	ref.Layout = filepath.Clean(dir)
	return ref, nil
}
