package registry

import (
	"context"
	"encoding/json"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/kiln-project/kiln/manifest"
)

// Info is what an image in a store is, read without downloading the disk.
type Info struct {
	Ref         string            `json:"ref"`
	Digest      string            `json:"digest"`
	MediaType   string            `json:"mediaType"`
	Format      Format            `json:"format"`
	ImageDigest string            `json:"imageDigest"`
	Disk        DiskInfo          `json:"disk"`
	Config      *Config           `json:"config,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Referrers are the artifacts attached to the image manifest (kiln
	// manifest, SBOM, …).
	Referrers []Referrer `json:"referrers"`
	// Signatures counts cosign-format signatures on Digest (not verified:
	// kiln pull --verify KEY does that).
	Signatures int `json:"signatures"`
	// Packages is the package count of the attached kiln manifest.
	Packages int `json:"packages,omitempty"`
}

// DiskInfo describes the disk layer.
type DiskInfo struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
	Title     string `json:"title,omitempty"`
}

// Inspect describes the image ref names: its manifests, config, referrers
// and signatures. Only manifests and small blobs are read.
func (c *Client) Inspect(ctx context.Context, ref Ref) (*Info, error) {
	r, err := c.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	info := &Info{
		Ref: ref.String(), Digest: r.top.Digest.String(), MediaType: string(r.top.MediaType),
		Format: r.format, ImageDigest: r.image.Digest.String(), Config: r.config,
		Annotations: r.manifest.Annotations,
		Disk:        DiskInfo{Digest: r.disk.Digest.String(), Size: r.disk.Size, MediaType: string(r.disk.MediaType), Title: r.disk.Annotations[AnnotationTitle]},
		Referrers:   []Referrer{},
	}
	refs, err := r.store.referrers(ctx, r.image.Digest)
	if err != nil {
		return nil, err
	}
	for _, d := range refs {
		info.Referrers = append(info.Referrers, Referrer{ArtifactType: d.ArtifactType, Digest: d.Digest.String(), Size: d.Size, Title: d.Annotations[AnnotationTitle]})
		if d.ArtifactType == string(ManifestMediaType) && info.Packages == 0 {
			// This referrer is the manifest: read it, not the list again.
			if b, err := c.artifactContent(ctx, r.store, d, ManifestMediaType); err == nil {
				if m, err := manifest.Parse(b); err == nil {
					info.Packages = len(m.Packages)
				}
			}
		}
	}
	info.Signatures = countSignatures(ctx, r.store, r.top.Digest)
	return info, nil
}

// countSignatures counts the signature layers under the cosign tag.
func countSignatures(ctx context.Context, s store, d v1.Hash) int {
	sd, err := s.resolve(ctx, signatureTag(d))
	if err != nil {
		return 0
	}
	raw, err := s.manifest(ctx, sd)
	if err != nil {
		return 0
	}
	var m v1.Manifest
	if json.Unmarshal(raw, &m) != nil {
		return 0
	}
	n := 0
	for _, l := range m.Layers {
		if l.MediaType == simpleSigningMediaType {
			n++
		}
	}
	return n
}
