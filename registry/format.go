package registry

import (
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-project/kiln/manifest"
)

// Format is how an image is laid out in a registry.
type Format string

const (
	// Native is kiln's own: an index whose one linux/amd64 manifest carries
	// the qcow2 as a blob, with a config a fleet can read without the disk.
	Native Format = "kiln"
	// ContainerDisk is KubeVirt's: one tar layer with disk/disk.img (107:107).
	ContainerDisk Format = "containerdisk"
	// Podman is podman machine's: an index entry annotated disktype=qemu
	// with one zstd-compressed qcow2 layer.
	Podman Format = "podman"
)

// Formats lists every format, for help texts and errors.
var Formats = []Format{Native, ContainerDisk, Podman}

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	if s == "" || s == "native" {
		return Native, nil
	}
	return "", fmt.Errorf("unknown format %q: use one of kiln, containerdisk, podman", s)
}

// Media types kiln defines (all under application/vnd.kiln.).
const (
	// ArtifactType is the artifactType of a native kiln image manifest.
	ArtifactType types.MediaType = "application/vnd.kiln.image.v1"
	// ConfigMediaType is the config blob of a native image: Config as JSON.
	ConfigMediaType types.MediaType = "application/vnd.kiln.image.config.v1+json"
	// DiskMediaType is the layer holding the qcow2 file as it is.
	DiskMediaType types.MediaType = "application/vnd.kiln.disk.v1.qcow2"
	// ManifestMediaType is a kiln manifest (manifest.json) attached as a referrer.
	ManifestMediaType types.MediaType = "application/vnd.kiln.manifest.v1+json"
	// SBOMMediaType is an SPDX 2.3 JSON document attached as a referrer.
	SBOMMediaType types.MediaType = "application/spdx+json"
	// emptyMediaType is the OCI empty descriptor's config for artifacts.
	emptyMediaType types.MediaType = "application/vnd.oci.empty.v1+json"
	// zstdMediaType is podman machine's compressed disk layer.
	zstdMediaType types.MediaType = "application/zstd"
)

// Annotations kiln sets besides the org.opencontainers.image.* ones.
const (
	AnnotationTitle       = "org.opencontainers.image.title"
	AnnotationCreated     = "org.opencontainers.image.created"
	AnnotationVersion     = "org.opencontainers.image.version"
	AnnotationSource      = "org.opencontainers.image.source"
	AnnotationRevision    = "org.opencontainers.image.revision"
	AnnotationVirtualSize = "vnd.kiln.disk.virtual-size"
	AnnotationFirmware    = "vnd.kiln.disk.firmware"
	AnnotationRecipe      = "vnd.kiln.recipe.digest"
	AnnotationDiskDigest  = "vnd.kiln.disk.digest"
	// podmanDiskType is the annotation podman machine selects a disk by.
	podmanDiskType = "disktype"
)

// Config is the config blob of a native image: what `kiln test` and a
// fleet need to know about the disk without downloading it.
type Config struct {
	Name        string           `json:"name"`
	Format      string           `json:"format"` // qcow2
	VirtualSize int64            `json:"virtualSize"`
	Firmware    []string         `json:"firmware"`
	Recipe      manifest.Recipe  `json:"recipe"`
	Roles       []string         `json:"roles"`
	OS          manifest.OS      `json:"os"`
	Checks      []manifest.Check `json:"checks"`
	Packages    int              `json:"packages"`
	Kiln        manifest.Kiln    `json:"kiln"`
}

func configFor(m *manifest.Manifest) Config {
	return Config{
		Name:        m.Recipe.Name,
		Format:      m.Disk.Format,
		VirtualSize: m.Disk.VirtualSize,
		Firmware:    m.Disk.Firmware,
		Recipe:      m.Recipe,
		Roles:       m.Recipe.Roles,
		OS:          m.OS,
		Checks:      m.Checks,
		Packages:    len(m.Packages),
		Kiln:        m.Kiln,
	}
}

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// fileBlob is a file pushed as one blob, as it is (no tar, no compression
// beyond what qcow2 itself has). Its digest was computed when it was opened.
type fileBlob struct {
	path   string
	digest v1.Hash
	size   int64
	mt     types.MediaType
	onRead func(io.Reader) io.Reader
	// hashed says digest was computed from the file, not taken from the
	// manifest.
	hashed bool
}

func newFileBlob(path string, mt types.MediaType) (*fileBlob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &fileBlob{path: path, digest: h, size: n, mt: mt}, nil
}

func (b *fileBlob) Digest() (v1.Hash, error)             { return b.digest, nil }
func (b *fileBlob) DiffID() (v1.Hash, error)             { return b.digest, nil }
func (b *fileBlob) Size() (int64, error)                 { return b.size, nil }
func (b *fileBlob) MediaType() (types.MediaType, error)  { return b.mt, nil }
func (b *fileBlob) Uncompressed() (io.ReadCloser, error) { return b.Compressed() }

// Compressed opens the file; a file changed since its digest was taken
// fails the registry's (or the layout's) digest check, never lands.
func (b *fileBlob) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, err
	}
	if b.onRead == nil {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{b.onRead(f), f}, nil
}

// titleFor is the title annotation of a disk: its file name.
func titleFor(path string) string {
	i := strings.LastIndexAny(path, `/\`)
	return path[i+1:]
}
