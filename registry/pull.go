package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/internal/ctxio"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/manifest"
)

// PullRequest is one image to fetch.
type PullRequest struct {
	Ref Ref
	// Out is the qcow2 to write; the manifest goes beside it
	// (manifest.PathFor(Out)).
	Out string
	// Verify, when set, requires a valid signature from this key before
	// anything is downloaded.
	Verify crypto.PublicKey
	// MaxDiskSize bounds the disk (compressed and unpacked); default 256 GiB.
	MaxDiskSize int64
}

// PullResult says what a pull wrote.
type PullResult struct {
	Ref         string `json:"ref"`
	Digest      string `json:"digest"`
	ImageDigest string `json:"imageDigest"`
	Format      Format `json:"format"`
	DiskDigest  string `json:"diskDigest"`
	Out         string `json:"out"`
	Manifest    string `json:"manifest,omitempty"`
	// FromCache is true when the blob came from the local blob cache.
	FromCache       bool  `json:"fromCache"`
	BytesDownloaded int64 `json:"bytesDownloaded"`
	Verified        bool  `json:"verified"`
}

// resolved is an image found in a store: the top manifest and the
// linux/amd64 image manifest under it.
type resolved struct {
	store    store
	top      v1.Descriptor
	image    v1.Descriptor
	manifest v1.Manifest
	format   Format
	disk     v1.Descriptor // the layer that holds the disk
	config   *Config       // native and podman formats
}

// Pull fetches an image into a qcow2 file and its kiln manifest.
func (c *Client) Pull(ctx context.Context, req PullRequest) (*PullResult, error) {
	if req.MaxDiskSize == 0 {
		req.MaxDiskSize = 256 << 30
	}
	if req.Out == "" {
		return nil, errors.New("pull: no output file (-o FILE)")
	}
	if err := os.MkdirAll(filepath.Dir(req.Out), 0o755); err != nil {
		return nil, fmt.Errorf("pull: output directory: %w", err)
	}
	r, err := c.resolve(ctx, req.Ref)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Ref: req.Ref.String(), Digest: r.top.Digest.String(), ImageDigest: r.image.Digest.String(), Format: r.format, Out: req.Out}
	if req.Verify != nil {
		if err := c.verifyDigest(ctx, r.store, req.Ref, r.top.Digest, req.Verify); err != nil {
			return nil, err
		}
		res.Verified = true
	}
	if r.disk.Size > req.MaxDiskSize {
		return nil, fmt.Errorf("%s: the disk layer is %s, more than the %s allowed (raise the limit if this is expected)", req.Ref, byteCount(r.disk.Size), byteCount(req.MaxDiskSize))
	}
	// The kiln manifest first: it is small, and it says what the disk's
	// digest must be.
	m, mjson, err := c.kilnManifest(ctx, r)
	if err != nil {
		return nil, err
	}

	dir := c.blobDir()
	if dir == "" {
		// No cache: a scratch dir beside the output keeps partial downloads
		// for the next run, and is removed after a success.
		dir = filepath.Join(filepath.Dir(req.Out), "."+filepath.Base(req.Out)+".kiln-pull")
		defer func() {
			if err == nil {
				os.RemoveAll(dir)
			}
		}()
	}
	st := progress.Begin(c.sink, "pull", r.disk.Size, fmt.Sprintf("pulling %s@%s (%s)", req.Ref, r.top.Digest, byteCount(r.disk.Size)))
	blob, err := c.fetchBlob(ctx, r.store, r.disk, dir, st)
	if err != nil {
		return nil, err
	}
	res.FromCache, res.BytesDownloaded = blob.fromCache, blob.downloaded
	if rs, ok := r.store.(*remoteStore); ok && c.opts.CacheDir != "" {
		c.locations(rs.repo.RegistryStr()).add(rs.repo.RepositoryStr(), r.disk.Digest)
	}

	diskDigest, err := c.unpack(ctx, r, blob.path, req)
	if err != nil {
		return nil, err
	}
	res.DiskDigest = diskDigest.String()
	if m != nil {
		if err := checkDiskDigest(m, diskDigest); err != nil {
			os.Remove(req.Out)
			return nil, fmt.Errorf("%s: %w", req.Ref, err)
		}
		res.Manifest = manifest.PathFor(req.Out)
		if err := atomicfile.Write(res.Manifest, mjson, 0o644); err != nil {
			return nil, err
		}
	} else {
		st.Warn(fmt.Sprintf("%s has no kiln manifest attached: wrote the disk only", req.Ref))
	}
	st.End(fmt.Sprintf("pulled %s@%s to %s", req.Ref, r.top.Digest, req.Out))
	return res, nil
}

// resolve finds the image a reference names, and its disk layer.
func (c *Client) resolve(ctx context.Context, ref Ref) (*resolved, error) {
	s, err := c.store(ref)
	if err != nil {
		return nil, err
	}
	top, err := s.resolve(ctx, ref.Identifier())
	if err != nil {
		return nil, err
	}
	r := &resolved{store: s, top: top, image: top}
	raw, err := s.manifest(ctx, top)
	if err != nil {
		return nil, err
	}
	switch top.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: index: %w", ref, err)
		}
		d, err := pickPlatform(im)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		r.image = d
		if raw, err = s.manifest(ctx, d); err != nil {
			return nil, err
		}
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	default:
		return nil, fmt.Errorf("%s: a manifest of media type %q is not an image kiln can use (want an OCI image index or manifest)", ref, top.MediaType)
	}
	if err := json.Unmarshal(raw, &r.manifest); err != nil {
		return nil, fmt.Errorf("%s: image manifest: %w", ref, err)
	}
	if r.manifest.MediaType != "" && r.manifest.MediaType != types.OCIManifestSchema1 && r.manifest.MediaType != types.DockerManifestSchema2 {
		return nil, fmt.Errorf("%s: manifest %s has media type %q, not an image manifest", ref, r.image.Digest, r.manifest.MediaType)
	}
	if err := r.classify(ctx, ref); err != nil {
		return nil, err
	}
	return r, nil
}

// pickPlatform chooses the linux/amd64 image of an index (podman calls the
// architecture x86_64).
func pickPlatform(im *v1.IndexManifest) (v1.Descriptor, error) {
	var seen []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			seen = append(seen, "(no platform)")
			continue
		}
		seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
		if d.Platform.OS == "linux" && (d.Platform.Architecture == "amd64" || d.Platform.Architecture == "x86_64") {
			if d.MediaType == types.OCIImageIndex || d.MediaType == types.DockerManifestList {
				continue
			}
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("the index has no linux/amd64 image (it has: %s)", strings.Join(seen, ", "))
}

// classify finds the format and the disk layer of an image manifest.
func (r *resolved) classify(ctx context.Context, ref Ref) error {
	ls := r.manifest.Layers
	if r.manifest.Config.MediaType == ConfigMediaType {
		b, err := readSmall(ctx, r.store, r.manifest.Config, maxConfigSize)
		if err != nil {
			return err
		}
		var cfg Config
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("%s: kiln image config: %w", ref, err)
		}
		r.config = &cfg
	}
	if len(ls) != 1 {
		return fmt.Errorf("%s: the image has %d layers; a disk image has exactly one", ref, len(ls))
	}
	r.disk = ls[0]
	switch ls[0].MediaType {
	case DiskMediaType:
		r.format = Native
	case zstdMediaType:
		if !strings.HasSuffix(ls[0].Annotations[AnnotationTitle], ".qcow2.zst") {
			return fmt.Errorf("%s: a zstd layer titled %q is not a podman machine disk (want NAME.x86_64.qemu.qcow2.zst)", ref, ls[0].Annotations[AnnotationTitle])
		}
		r.format = Podman
	case types.OCIUncompressedLayer, types.OCILayer, types.DockerLayer, types.DockerUncompressedLayer:
		r.format = ContainerDisk
	default:
		return fmt.Errorf("%s: its layer (media type %q) is not a disk: kiln reads kiln images, KubeVirt containerDisks and podman machine images", ref, ls[0].MediaType)
	}
	return nil
}

// kilnManifest reads the kiln manifest attached to the image, if any.
func (c *Client) kilnManifest(ctx context.Context, r *resolved) (*manifest.Manifest, []byte, error) {
	refs, err := r.store.referrers(ctx, r.image.Digest)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range refs {
		if d.ArtifactType != string(ManifestMediaType) {
			continue
		}
		b, err := c.artifactContent(ctx, r.store, d, ManifestMediaType)
		if err != nil {
			return nil, nil, err
		}
		m, err := manifest.Parse(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: attached kiln manifest %s: %w", r.store, d.Digest, err)
		}
		return m, b, nil
	}
	return nil, nil, nil
}

// artifactContent reads the one layer of a referrer artifact.
func (c *Client) artifactContent(ctx context.Context, s store, d v1.Descriptor, mt types.MediaType) ([]byte, error) {
	raw, err := s.manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	var am v1.Manifest
	if err := json.Unmarshal(raw, &am); err != nil {
		return nil, fmt.Errorf("%s: referrer %s: %w", s, d.Digest, err)
	}
	for _, l := range am.Layers {
		if l.MediaType == mt {
			return readSmall(ctx, s, l, maxSmallBlob)
		}
	}
	return nil, fmt.Errorf("%s: referrer %s has no %s layer", s, d.Digest, mt)
}

func checkDiskDigest(m *manifest.Manifest, got v1.Hash) error {
	for _, a := range m.Artifacts {
		if a.SHA256 == got.String() {
			return nil
		}
	}
	if len(m.Artifacts) == 0 {
		return nil
	}
	return fmt.Errorf("the disk (%s) is not the one its kiln manifest describes (%s): refusing a mismatched pair", got, m.Artifacts[0].SHA256)
}

// unpack turns the verified blob into the output qcow2 (temp file, fsync,
// rename), checks it as untrusted input, and returns its digest.
func (c *Client) unpack(ctx context.Context, r *resolved, blob string, req PullRequest) (v1.Hash, error) {
	src, err := os.Open(blob)
	if err != nil {
		return v1.Hash{}, err
	}
	defer src.Close()
	dir := filepath.Dir(req.Out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(req.Out)+".tmp-")
	if err != nil {
		return v1.Hash{}, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	hw := newVerifier(v1.Hash{}, -1)
	w := io.MultiWriter(tmp, hw)
	var digest v1.Hash
	limit := req.MaxDiskSize
	switch r.format {
	case Native:
		// File to file: the kernel may reflink or copy in place.
		// The blob is the disk, verified on download.
		if _, err := io.Copy(tmp, src); err != nil { // copy_file_range: a reflink where the filesystem can
			return v1.Hash{}, err
		}
		digest = r.disk.Digest
	case Podman:
		zr, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return v1.Hash{}, err
		}
		defer zr.Close()
		if err := copyBounded(ctx, w, zr, limit, req.Ref); err != nil {
			return v1.Hash{}, err
		}
	case ContainerDisk:
		if err := extractContainerDisk(ctx, w, src, r.disk.MediaType, limit, req.Ref); err != nil {
			return v1.Hash{}, err
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return v1.Hash{}, err
	}
	if err := tmp.Sync(); err != nil {
		return v1.Hash{}, err
	}
	if err := tmp.Close(); err != nil {
		return v1.Hash{}, err
	}
	// Untrusted until checked: a qcow2 (or raw) without a backing file.
	if _, err := image.Check(tmp.Name(), image.WithMaxVirtualSize(4*limit)); err != nil {
		if errors.Is(err, image.ErrBackingFile) {
			// The check's advice (flatten the file) is for local files; a
			// published image with a backing file is broken at its source.
			return v1.Hash{}, fmt.Errorf("%s: the disk in it has a backing file: an image in a registry must stand alone (whoever publishes it should flatten it with qemu-img convert first): %w", req.Ref, image.ErrBackingFile)
		}
		return v1.Hash{}, fmt.Errorf("%s: the pulled disk is not usable: %s", req.Ref, strings.ReplaceAll(err.Error(), tmp.Name(), "the disk"))
	}
	if err := os.Rename(tmp.Name(), req.Out); err != nil {
		return v1.Hash{}, err
	}
	done = true
	syncDir(dir)
	if digest.Hex == "" {
		digest = hw.sum()
	}
	return digest, nil
}

func copyBounded(ctx context.Context, w io.Writer, r io.Reader, limit int64, ref Ref) error {
	n, err := io.Copy(w, io.LimitReader(ctxio.Reader(ctx, r), limit+1))
	if err != nil {
		return fmt.Errorf("%s: unpacking the disk: %w", ref, err)
	}
	if n > limit {
		return fmt.Errorf("%s: the unpacked disk is larger than the %s allowed", ref, byteCount(limit))
	}
	return nil
}

// extractContainerDisk copies the disk out of a containerDisk layer: the
// one regular file under disk/ (KubeVirt takes the first it finds there).
func extractContainerDisk(ctx context.Context, w io.Writer, r io.Reader, mt types.MediaType, limit int64, ref Ref) error {
	if mt == types.OCILayer || mt == types.DockerLayer {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: containerDisk layer: %w", ref, err)
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s: its layer is not a disk: it has no file under disk/ (a KubeVirt containerDisk holds disk/disk.img)", ref)
		}
		if err != nil {
			return fmt.Errorf("%s: containerDisk layer: %w", ref, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		name = strings.TrimPrefix(name, "/")
		if !strings.HasPrefix(name, "disk/") || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > limit {
			return fmt.Errorf("%s: %s is %s, more than the %s allowed", ref, name, byteCount(h.Size), byteCount(limit))
		}
		return copyBounded(ctx, w, tr, h.Size, ref)
	}
}
