package registry

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/manifest"
)

// PushRequest is one image to publish.
type PushRequest struct {
	// Image is the qcow2 file; Manifest its kiln manifest (default: the
	// .manifest.json beside it).
	Image    string
	Manifest string
	Ref      Ref
	Format   Format
	// Annotations are added to the image manifest (version, source,
	// revision, …).
	Annotations map[string]string
	// Sign, when set, signs the pushed manifest (cosign format).
	Sign crypto.Signer
}

// PushResult says what a push published.
type PushResult struct {
	Ref    string `json:"ref"`
	Format Format `json:"format"`
	// Digest is what the tag points at (an index, or for containerDisk the
	// image manifest); ImageDigest the linux/amd64 image manifest.
	Digest      string     `json:"digest"`
	ImageDigest string     `json:"imageDigest"`
	DiskDigest  string     `json:"diskDigest"`
	Referrers   []Referrer `json:"referrers"`
	Signature   string     `json:"signature,omitempty"`
	// BlobBytesSent counts the disk-layer bytes uploaded: 0 when the
	// registry had the blob or mounted it from another repository.
	BlobBytesSent int64 `json:"blobBytesSent"`
}

// Referrer is an artifact attached to an image.
type Referrer struct {
	ArtifactType string `json:"artifactType"`
	Digest       string `json:"digest"`
	Size         int64  `json:"size"`
	Title        string `json:"title,omitempty"`
}

// Push publishes a kiln image (and its manifest and SBOM as referrers).
func (c *Client) Push(ctx context.Context, req PushRequest) (*PushResult, error) {
	if req.Manifest == "" {
		req.Manifest = manifest.PathFor(req.Image)
	}
	if req.Format == "" {
		req.Format = Native
	}
	m, err := manifest.Read(req.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: the image's manifest: %w (push takes an image kiln baked, with its manifest beside it)", req.Manifest, err)
	}
	if _, err := image.Check(req.Image); err != nil {
		return nil, err
	}
	st := progress.Begin(c.sink, "push", 0, "pushing "+req.Image)
	disk, err := diskBlob(req.Image, m)
	if err != nil {
		return nil, err
	}
	s, err := c.store(req.Ref)
	if err != nil {
		return nil, err
	}
	// The disk is not hashed up front when the store will check what it
	// receives against the digest anyway (a registry must; the layout does):
	// only a blob the store has already, or mounts from elsewhere, is taken
	// without an upload, and then the local file is hashed first.
	if !disk.hashed {
		have, err := s.hasBlob(ctx, disk.digest)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", req.Ref, err)
		}
		if rs, ok := s.(*remoteStore); have || (ok && rs.mounts != nil && len(rs.mounts(disk.digest)) > 0) || req.Format != Native {
			if err := disk.verify(); err != nil {
				return nil, err
			}
		}
	}
	var sent atomic.Int64
	count := func(total int64) func(io.Reader) io.Reader {
		return func(r io.Reader) io.Reader {
			return progress.NewReader(countingReader{r, &sent}, st, total)
		}
	}
	tag := ""
	if !req.Ref.ByDigest() {
		tag = req.Ref.Identifier()
	}
	annotations := c.annotations(req, disk, m)

	var top partial.Describable
	var img v1.Image
	switch req.Format {
	case Native:
		disk.onRead = count(disk.size)
		img, top, err = nativeImage(disk, m, annotations)
	case ContainerDisk:
		var layer *fileBlob
		if layer, err = c.derived(ctx, "containerdisk", disk, writeContainerDiskTar(m)); err == nil {
			layer.onRead = count(layer.size)
			img, err = containerDiskImage(layer, disk, m, annotations)
			top = img
		}
	case Podman:
		var layer *fileBlob
		if layer, err = c.derived(ctx, "podman", disk, writeZstd); err == nil {
			layer.onRead = count(layer.size)
			img, top, err = podmanImage(layer, disk, m, annotations)
		}
	default:
		err = fmt.Errorf("unknown format %q", req.Format)
	}
	if err != nil {
		return nil, err
	}
	st.Note(fmt.Sprintf("pushing %s (%s) to %s", req.Image, req.Format, req.Ref))
	if idx, ok := top.(v1.ImageIndex); ok {
		err = s.putIndex(ctx, idx, tag)
	} else {
		err = s.putImage(ctx, img, tag)
	}
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", req.Ref, err)
	}
	imgDesc, err := partial.Descriptor(img)
	if err != nil {
		return nil, err
	}
	topDigest, err := top.Digest()
	if err != nil {
		return nil, err
	}
	res := &PushResult{Ref: req.Ref.String(), Format: req.Format, Digest: topDigest.String(), ImageDigest: imgDesc.Digest.String(), DiskDigest: disk.digest.String()}

	// The manifest and the SBOM hang off the image manifest.
	mjson, err := os.ReadFile(req.Manifest)
	if err != nil {
		return nil, err
	}
	sbom, err := SBOM(m, disk.digest.String())
	if err != nil {
		return nil, err
	}
	created := map[string]string{AnnotationCreated: annotations[AnnotationCreated]}
	for _, a := range []struct {
		mt      types.MediaType
		content []byte
		title   string
	}{
		{ManifestMediaType, mjson, "manifest.json"},
		{SBOMMediaType, sbom, "sbom.spdx.json"},
	} {
		art, err := artifact(a.mt, a.content, a.title, *imgDesc, created)
		if err != nil {
			return nil, err
		}
		if err := s.putImage(ctx, art, ""); err != nil {
			return nil, fmt.Errorf("push %s: attaching %s: %w", req.Ref, a.title, err)
		}
		d, _ := partial.Descriptor(art)
		res.Referrers = append(res.Referrers, Referrer{ArtifactType: string(a.mt), Digest: d.Digest.String(), Size: d.Size, Title: a.title})
	}
	if rs, ok := s.(*remoteStore); ok && c.opts.CacheDir != "" {
		layers, _ := img.Layers()
		var ds []v1.Hash
		for _, l := range layers {
			if d, err := l.Digest(); err == nil {
				ds = append(ds, d)
			}
		}
		c.locations(rs.repo.RegistryStr()).add(rs.repo.RepositoryStr(), ds...)
	}
	res.BlobBytesSent = sent.Load()
	if req.Sign != nil {
		sig, err := c.signDigest(ctx, s, req.Ref, topDigest, req.Sign)
		if err != nil {
			return nil, err
		}
		res.Signature = sig
	}
	st.End(fmt.Sprintf("pushed %s@%s (%s sent)", req.Ref, res.Digest, byteCount(res.BlobBytesSent)))
	return res, nil
}

// diskBlob is the image file as a blob. Its digest is the one its kiln
// manifest records, checked later (see Push); without one it is hashed now.
func diskBlob(path string, m *manifest.Manifest) (*fileBlob, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	for _, a := range m.Artifacts {
		if filepath.Base(path) != a.Name && len(m.Artifacts) != 1 {
			continue
		}
		h, err := v1.NewHash(a.SHA256)
		if err != nil {
			break
		}
		if a.Size != st.Size() {
			return nil, changedError(path, fmt.Sprintf("%d bytes", st.Size()), fmt.Sprintf("%d", a.Size))
		}
		return &fileBlob{path: path, digest: h, size: st.Size(), mt: DiskMediaType}, nil
	}
	b, err := newFileBlob(path, DiskMediaType)
	if err != nil {
		return nil, err
	}
	b.hashed = true
	return b, nil
}

// verify hashes the file and compares it with the digest it was given.
func (b *fileBlob) verify() error {
	if b.hashed {
		return nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		return fmt.Errorf("%s: %w", b.path, err)
	}
	if h != b.digest || n != b.size {
		return changedError(b.path, h.String(), b.digest.String())
	}
	b.hashed = true
	return nil
}

func changedError(path, got, want string) error {
	return fmt.Errorf("%s: %s, but its manifest says %s: the image changed after it was baked; bake it again", path, got, want)
}

// annotations are the image manifest's: the standard ones, kiln's, and
// the request's (which win).
func (c *Client) annotations(req PushRequest, disk *fileBlob, m *manifest.Manifest) map[string]string {
	a := map[string]string{
		AnnotationTitle:       titleFor(req.Image),
		AnnotationCreated:     time.Unix(m.Build.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
		AnnotationVirtualSize: strconv.FormatInt(m.Disk.VirtualSize, 10),
		AnnotationFirmware:    strings.Join(m.Disk.Firmware, ","),
		AnnotationDiskDigest:  disk.digest.String(),
	}
	if m.Recipe.Digest != "" {
		a[AnnotationRecipe] = m.Recipe.Digest
	}
	for k, v := range req.Annotations {
		a[k] = v
	}
	return a
}

func nativeImage(disk *fileBlob, m *manifest.Manifest, annotations map[string]string) (v1.Image, v1.ImageIndex, error) {
	cfg, err := json.Marshal(configFor(m))
	if err != nil {
		return nil, nil, err
	}
	img, err := buildImage(ArtifactType, ConfigMediaType, cfg,
		[]layerSpec{{layer: disk, annotations: map[string]string{AnnotationTitle: annotations[AnnotationTitle]}}},
		annotations, nil)
	if err != nil {
		return nil, nil, err
	}
	idx, err := newIndex([]indexEntry{{image: img, platform: amd64, annotations: annotations}}, nil)
	return img, idx, err
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
