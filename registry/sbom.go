package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln/manifest"
)

// SPDX 2.3 JSON, the subset kiln writes: one package for the image, one per
// Debian package in it, with Debian purls.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string            `json:"name"`
	SPDXID           string            `json:"SPDXID"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	Supplier         string            `json:"supplier,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	PrimaryPurpose   string            `json:"primaryPackagePurpose,omitempty"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOM returns an SPDX 2.3 JSON document for the packages a kiln manifest
// lists. diskDigest ("sha256:…") names the image; the output depends only
// on its inputs, so the same image always gets the same SBOM.
func SBOM(m *manifest.Manifest, diskDigest string) ([]byte, error) {
	created := time.Unix(m.Build.SourceDateEpoch, 0).UTC().Format(time.RFC3339)
	name := m.Recipe.Name
	if name == "" {
		name = "image"
	}
	hex := strings.TrimPrefix(diskDigest, "sha256:")
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "urn:kiln:sbom:" + name + ":sha256:" + hex,
		CreationInfo:      spdxCreationInfo{Created: created, Creators: []string{"Tool: kiln-" + orUnknown(m.Kiln.Version)}},
	}
	root := spdxPackage{
		Name: name, SPDXID: "SPDXRef-Image", DownloadLocation: "NOASSERTION",
		PrimaryPurpose: "OPERATING-SYSTEM",
		VersionInfo:    m.OS.Distro + " " + m.OS.Release,
	}
	if hex != "" {
		root.Checksums = []spdxChecksum{{Algorithm: "SHA256", Value: hex}}
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"})
	distro := strings.ToLower(m.OS.Distro)
	if distro == "" {
		distro = "debian"
	}
	for i, p := range m.Packages {
		id := fmt.Sprintf("SPDXRef-Package-%d-%s", i, spdxIDSafe(p.Name))
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: p.Name, SPDXID: id, VersionInfo: p.Version, Supplier: "Organization: Debian",
			DownloadLocation: "NOASSERTION",
			ExternalRefs:     []spdxExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: debPurl(distro, m.OS.Release, p)}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Image", "CONTAINS", id})
	}
	return json.MarshalIndent(doc, "", "  ")
}

// debPurl is a package URL (github.com/package-url/purl-spec, type deb).
func debPurl(distro, release string, p manifest.Package) string {
	s := "pkg:deb/" + distro + "/" + purlEscape(p.Name) + "@" + purlEscape(p.Version) + "?arch=" + purlEscape(p.Arch)
	if release != "" {
		s += "&distro=" + purlEscape(distro+"-"+release)
	}
	return s
}

// purlEscape percent-encodes everything but unreserved characters; a Debian
// version's epoch colon and "+" must not appear bare in a purl.
func purlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// spdxIDSafe keeps the characters an SPDX identifier allows.
func spdxIDSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
