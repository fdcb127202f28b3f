package registry

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/manifest"
)

// KubeVirt's containerDisk contract: the disk under /disk, readable by the
// qemu user (107) virt-launcher runs as.
const (
	containerDiskPath = "disk/disk.img"
	containerDiskUID  = 107
)

// writeContainerDiskTar returns a writer of the containerDisk layer: a tar
// with disk/ and disk/disk.img, owned 107:107, times from the image's
// SOURCE_DATE_EPOCH, so the same image always makes the same layer.
func writeContainerDiskTar(m *manifest.Manifest) func(w io.Writer, disk *os.File, size int64) error {
	mtime := time.Unix(m.Build.SourceDateEpoch, 0).UTC()
	return func(w io.Writer, disk *os.File, size int64) error {
		tw := tar.NewWriter(w)
		hdrs := []*tar.Header{
			{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: containerDiskUID, Gid: containerDiskUID, ModTime: mtime, Format: tar.FormatPAX},
			{Typeflag: tar.TypeReg, Name: containerDiskPath, Mode: 0o440, Size: size, Uid: containerDiskUID, Gid: containerDiskUID, ModTime: mtime, Format: tar.FormatPAX},
		}
		if err := tw.WriteHeader(hdrs[0]); err != nil {
			return err
		}
		if err := tw.WriteHeader(hdrs[1]); err != nil {
			return err
		}
		if _, err := io.Copy(tw, disk); err != nil {
			return err
		}
		return tw.Close()
	}
}

// writeZstd compresses the whole file, as podman machine images are.
func writeZstd(w io.Writer, disk *os.File, _ int64) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, disk); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// derived makes (or finds in the blob cache) a blob derived from the disk:
// the containerDisk tar or the podman .zst. The cache remembers which blob
// a disk digest gave, so re-pushing an unchanged image does not rebuild it.
func (c *Client) derived(ctx context.Context, kind string, disk *fileBlob, write func(io.Writer, *os.File, int64) error) (*fileBlob, error) {
	dir := c.blobDir()
	temp := dir == ""
	if temp {
		d, err := os.MkdirTemp("", "kiln-push-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	mt := types.OCIUncompressedLayer
	if kind == "podman" {
		mt = zstdMediaType
	}
	record := filepath.Join(dir, "derived", kind+"-"+disk.digest.Hex)
	if b, err := os.ReadFile(record); err == nil {
		if h, err := v1.NewHash(strings.TrimSpace(string(b))); err == nil {
			p := filepath.Join(dir, "sha256", h.Hex)
			if st, err := os.Stat(p); err == nil {
				return &fileBlob{path: p, digest: h, size: st.Size(), mt: mt}, nil
			}
		}
	}
	src, err := os.Open(disk.path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "tmp", kind+"-"+disk.digest.Hex)
	var h v1.Hash
	var n int64
	err = atomicfile.WriteFrom(tmp, 0o644, func(w io.Writer) error {
		hw := newVerifier(v1.Hash{}, -1)
		if err := write(io.MultiWriter(w, hw), src, disk.size); err != nil {
			return err
		}
		h, n = hw.sum(), hw.n
		return ctx.Err()
	})
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("making the %s layer: %w", kind, err)
	}
	final := filepath.Join(dir, "sha256", h.Hex)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if !temp {
		os.MkdirAll(filepath.Dir(record), 0o755)
		atomicfile.Write(record, []byte(h.String()+"\n"), 0o644)
	}
	return &fileBlob{path: final, digest: h, size: n, mt: mt}, nil
}

func containerDiskImage(layer, disk *fileBlob, m *manifest.Manifest, annotations map[string]string) (v1.Image, error) {
	created := v1.Time{Time: time.Unix(m.Build.SourceDateEpoch, 0).UTC()}
	cfg := v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{layer.digest}},
		History:      []v1.History{{Created: created, CreatedBy: "kiln push --format containerdisk", Comment: "disk " + disk.digest.String()}},
		Config:       v1.Config{Labels: map[string]string{AnnotationDiskDigest: disk.digest.String()}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return buildImage("", types.OCIConfigJSON, raw, []layerSpec{{layer: layer}}, annotations, nil)
}

func podmanImage(layer, disk *fileBlob, m *manifest.Manifest, annotations map[string]string) (v1.Image, v1.ImageIndex, error) {
	cfg, err := json.Marshal(configFor(m))
	if err != nil {
		return nil, nil, err
	}
	name := strings.TrimSuffix(annotations[AnnotationTitle], ".qcow2")
	title := name + ".x86_64.qemu.qcow2.zst"
	img, err := buildImage(ArtifactType, ConfigMediaType, cfg, []layerSpec{{layer: layer, annotations: map[string]string{AnnotationTitle: title}}}, annotations, nil)
	if err != nil {
		return nil, nil, err
	}
	idx, err := newIndex([]indexEntry{{
		image:       img,
		platform:    v1.Platform{OS: "linux", Architecture: "x86_64"},
		annotations: map[string]string{podmanDiskType: "qemu"},
	}}, nil)
	return img, idx, err
}
