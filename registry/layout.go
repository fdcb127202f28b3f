package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/internal/ctxio"
	"github.com/kiln-project/kiln/internal/flock"
)

// layoutStore is an OCI image layout directory (image-spec image-layout):
// oci-layout, index.json naming tags through org.opencontainers.image.ref.name,
// and blobs/sha256/<hex>. Every file is written whole (temp file, fsync,
// rename) and verified, so a kill at any point leaves a layout the next run
// reads and completes.
type layoutStore struct {
	dir string
}

const refNameAnnotation = "org.opencontainers.image.ref.name"

func openLayout(dir string) (*layoutStore, error) {
	return &layoutStore{dir: dir}, nil
}

func (s *layoutStore) String() string { return "oci:" + s.dir }

func (s *layoutStore) blobPath(d v1.Hash) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm, d.Hex)
}

// index reads index.json; a missing layout is an empty one.
func (s *layoutStore) index() (*v1.IndexManifest, error) {
	b, err := readBounded(filepath.Join(s.dir, "index.json"), maxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", s, err)
	}
	return &im, nil
}

func (s *layoutStore) resolve(ctx context.Context, id string) (v1.Descriptor, error) {
	im, err := s.index()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if strings.HasPrefix(id, "sha256:") {
		h, err := v1.NewHash(id)
		if err != nil {
			return v1.Descriptor{}, err
		}
		for _, d := range im.Manifests {
			if d.Digest == h {
				return d, nil
			}
		}
		// Not at the top: a manifest inside an index, or a referrer.
		return s.describeBlob(h)
	}
	for _, d := range im.Manifests {
		if d.Annotations[refNameAnnotation] == id {
			return d, nil
		}
	}
	return v1.Descriptor{}, &NotFoundError{Ref: s.String() + ":" + id, What: "tag"}
}

// describeBlob makes a descriptor for a manifest blob from its content.
func (s *layoutStore) describeBlob(h v1.Hash) (v1.Descriptor, error) {
	b, err := readBounded(s.blobPath(h), maxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return v1.Descriptor{}, &NotFoundError{Ref: s.String() + "@" + h.String(), What: "manifest"}
	}
	if err != nil {
		return v1.Descriptor{}, err
	}
	var mt struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &mt); err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s@%s: not a manifest: %w", s, h, err)
	}
	return v1.Descriptor{MediaType: mt.MediaType, Size: int64(len(b)), Digest: h}, nil
}

func (s *layoutStore) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return readSmall(ctx, s, d, maxManifestSize)
}

func (s *layoutStore) blob(ctx context.Context, d v1.Hash, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotFoundError{Ref: s.String() + "@" + d.String(), What: "blob"}
	}
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (s *layoutStore) hasBlob(ctx context.Context, d v1.Hash) (bool, error) {
	_, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// writeBlob stores a blob whole and verified; present blobs are kept.
func (s *layoutStore) writeBlob(ctx context.Context, d v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	p := s.blobPath(d)
	if st, err := os.Stat(p); err == nil && st.Size() == size {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return atomicfile.WriteFrom(p, 0o644, func(w io.Writer) error {
		hw := newVerifier(d, size)
		if _, err := io.Copy(io.MultiWriter(w, hw), ctxio.Reader(ctx, rc)); err != nil {
			return err
		}
		return hw.check()
	})
}

func (s *layoutStore) ensureLayout() error {
	if err := os.MkdirAll(filepath.Join(s.dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	p := filepath.Join(s.dir, "oci-layout")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return atomicfile.Write(p, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func (s *layoutStore) putImage(ctx context.Context, img v1.Image, tag string) error {
	if err := s.ensureLayout(); err != nil {
		return err
	}
	if err := s.writeImageBlobs(ctx, img); err != nil {
		return err
	}
	d, err := partial.Descriptor(img)
	if err != nil {
		return err
	}
	return s.commit(ctx, *d, img, tag)
}

func (s *layoutStore) writeImageBlobs(ctx context.Context, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		if err := s.writeBlob(ctx, d, size, l.Compressed); err != nil {
			return fmt.Errorf("%s: blob %s: %w", s, d, err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cd, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := s.writeBytes(ctx, cd, cfg); err != nil {
		return err
	}
	return s.writeManifestOf(ctx, img)
}

func (s *layoutStore) writeManifestOf(ctx context.Context, m partial.WithRawManifest) error {
	raw, err := m.RawManifest()
	if err != nil {
		return err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return s.writeBytes(ctx, h, raw)
}

func (s *layoutStore) writeBytes(ctx context.Context, d v1.Hash, b []byte) error {
	return s.writeBlob(ctx, d, int64(len(b)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func (s *layoutStore) putIndex(ctx context.Context, idx v1.ImageIndex, tag string) error {
	if err := s.ensureLayout(); err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch d.MediaType {
		case types.OCIImageIndex, types.DockerManifestList:
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := s.putIndex(ctx, child, ""); err != nil {
				return err
			}
		default:
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			if err := s.writeImageBlobs(ctx, img); err != nil {
				return err
			}
		}
	}
	if err := s.writeManifestOf(ctx, idx); err != nil {
		return err
	}
	d, err := partial.Descriptor(idx)
	if err != nil {
		return err
	}
	return s.commit(ctx, *d, idx, tag)
}

// commit names a written manifest by tag in index.json, and files it under
// its subject's referrers tag when it has one.
func (s *layoutStore) commit(ctx context.Context, d v1.Descriptor, m partial.WithRawManifest, tag string) error {
	raw, err := m.RawManifest()
	if err != nil {
		return err
	}
	var head struct {
		Subject      *v1.Descriptor    `json:"subject"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	_ = json.Unmarshal(raw, &head)
	unlock, err := flock.Lock(ctx, filepath.Join(s.dir, ".kiln-index.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if head.Subject != nil {
		ref := d
		ref.Annotations = head.Annotations
		ref.ArtifactType = head.ArtifactType
		if ref.ArtifactType == "" {
			ref.ArtifactType = head.Config.MediaType
		}
		ref.Platform = nil
		if err := s.addReferrer(ctx, head.Subject.Digest, ref); err != nil {
			return err
		}
	}
	if tag == "" {
		return nil
	}
	return s.tag(d, tag)
}

// tag points tag at d in index.json (the caller holds the index lock).
func (s *layoutStore) tag(d v1.Descriptor, tag string) error {
	im, err := s.index()
	if err != nil {
		return err
	}
	kept := im.Manifests[:0]
	for _, m := range im.Manifests {
		if m.Annotations[refNameAnnotation] != tag {
			kept = append(kept, m)
		}
	}
	d.Annotations = map[string]string{refNameAnnotation: tag}
	im.Manifests = append(kept, d)
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, "index.json"), b, 0o644)
}

// addReferrer adds ref to the subject's referrers index, kept under the
// tag of the OCI referrers tag schema (sha256-<hex>), as on a registry
// without the referrers API.
func (s *layoutStore) addReferrer(ctx context.Context, subject v1.Hash, ref v1.Descriptor) error {
	tag := fallbackTag(subject)
	im := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if d, err := s.resolve(ctx, tag); err == nil {
		b, err := s.manifest(ctx, d)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, im); err != nil {
			return fmt.Errorf("%s: referrers index %s: %w", s, tag, err)
		}
	}
	for _, m := range im.Manifests {
		if m.Digest == ref.Digest {
			return nil
		}
	}
	im.Manifests = append(im.Manifests, ref)
	sort.Slice(im.Manifests, func(i, j int) bool { return im.Manifests[i].Digest.String() < im.Manifests[j].Digest.String() })
	b, err := json.Marshal(im)
	if err != nil {
		return err
	}
	h, n, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if err := s.writeBytes(ctx, h, b); err != nil {
		return err
	}
	return s.tag(v1.Descriptor{MediaType: types.OCIImageIndex, Size: n, Digest: h}, tag)
}

func (s *layoutStore) referrers(ctx context.Context, d v1.Hash) ([]v1.Descriptor, error) {
	rd, err := s.resolve(ctx, fallbackTag(d))
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := s.manifest(ctx, rd)
	if err != nil {
		return nil, err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("%s: referrers of %s: %w", s, d, err)
	}
	return im.Manifests, nil
}

// fallbackTag is the referrers tag schema's tag for a subject digest.
func fallbackTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex }

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", path, limit)
	}
	return b, nil
}
