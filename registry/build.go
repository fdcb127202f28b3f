package registry

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// builtImage is an image manifest kiln wrote itself (go-containerregistry's
// mutate cannot set artifactType or a config of kiln's own media type).
type builtImage struct {
	raw    []byte
	config []byte
	layers map[v1.Hash]partial.CompressedLayer
}

func (b *builtImage) RawConfigFile() ([]byte, error)      { return b.config, nil }
func (b *builtImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (b *builtImage) RawManifest() ([]byte, error)        { return b.raw, nil }
func (b *builtImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := b.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("no layer %s in this image", h)
}

// layerSpec is one layer of a built image.
type layerSpec struct {
	layer       partial.CompressedLayer
	annotations map[string]string
}

// buildImage writes an OCI image manifest.
func buildImage(artifactType types.MediaType, configType types.MediaType, config []byte, layers []layerSpec, annotations map[string]string, subject *v1.Descriptor) (v1.Image, error) {
	ch, n, err := v1.SHA256(bytes.NewReader(config))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  string(artifactType),
		Config:        v1.Descriptor{MediaType: configType, Size: n, Digest: ch},
		Annotations:   annotations,
		Subject:       subject,
	}
	if configType == emptyMediaType {
		m.Config.Data = config
	}
	b := &builtImage{config: config, layers: map[v1.Hash]partial.CompressedLayer{}}
	for _, l := range layers {
		d, err := partial.Descriptor(l.layer)
		if err != nil {
			return nil, err
		}
		d.Annotations = l.annotations
		m.Layers = append(m.Layers, *d)
		b.layers[d.Digest] = l.layer
	}
	if b.raw, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return partial.CompressedToImage(b)
}

// artifact is a referrer: one blob of content, empty config, subject set.
func artifact(mt types.MediaType, content []byte, title string, subject v1.Descriptor, annotations map[string]string) (v1.Image, error) {
	subject.Annotations, subject.Platform, subject.ArtifactType = nil, nil, ""
	l := static.NewLayer(content, mt)
	return buildImage(mt, emptyMediaType, []byte("{}"), []layerSpec{{layer: l, annotations: map[string]string{AnnotationTitle: title}}}, annotations, &subject)
}

// builtIndex is an image index over images kiln built.
type builtIndex struct {
	raw    []byte
	images map[v1.Hash]v1.Image
}

func newIndex(entries []indexEntry, annotations map[string]string) (*builtIndex, error) {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Annotations: annotations}
	bi := &builtIndex{images: map[v1.Hash]v1.Image{}}
	for _, e := range entries {
		d, err := partial.Descriptor(e.image)
		if err != nil {
			return nil, err
		}
		p := e.platform
		d.Platform = &p
		d.Annotations = e.annotations
		// No artifactType on index entries (the manifest has it): skopeo
		// 1.9 drops the field when it copies an index, which changes the
		// index's digest, and --preserve-digests then refuses the copy.
		d.ArtifactType = ""
		im.Manifests = append(im.Manifests, *d)
		bi.images[d.Digest] = e.image
	}
	var err error
	bi.raw, err = json.Marshal(im)
	return bi, err
}

type indexEntry struct {
	image       v1.Image
	platform    v1.Platform
	annotations map[string]string
}

func (b *builtIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
func (b *builtIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(b.raw))
	return h, err
}
func (b *builtIndex) Size() (int64, error) { return int64(len(b.raw)), nil }
func (b *builtIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(b.raw))
}
func (b *builtIndex) RawManifest() ([]byte, error) { return b.raw, nil }
func (b *builtIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := b.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("no image %s in this index", h)
}
func (b *builtIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("no index %s in this index", h)
}
