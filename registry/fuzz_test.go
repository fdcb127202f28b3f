package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// References come from users and from recipes: any string gives a Ref or
// a *RefError, never a panic.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"registry.example.com/team/web:1.2", "oci:./store:web", "oci:./s@sha256:" + fmtHex(1),
		"oci://localhost:5000/a/b@sha256:" + fmtHex(2), "docker://x.y/z", "web:1", "oci:", "::", "a/b:c:d@e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if _, ok := err.(*RefError); !ok {
				t.Fatalf("%q: %T %v", s, err, err)
			}
			return
		}
		if r.String() != s || (r.Remote == nil && r.Layout == "") {
			t.Fatalf("%q parsed to %+v", s, r)
		}
	})
}

// Manifests come from registries kiln does not control: whatever bytes a
// layout's index names, Inspect returns an image or an error, never a
// panic, and reads within its bounds.
func FuzzInspectManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:`+fmtHex(3)+`","platform":{"os":"linux","architecture":"amd64"}}]}`), string(types.OCIImageIndex))
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.kiln.image.config.v1+json","size":2,"digest":"sha256:`+fmtHex(4)+`"},"layers":[]}`), string(types.OCIManifestSchema1))
	f.Add([]byte(`{"layers":[{"mediaType":"application/zstd","size":-1,"digest":"sha256:`+fmtHex(5)+`"}]}`), string(types.OCIManifestSchema1))
	f.Fuzz(func(t *testing.T, raw []byte, mediaType string) {
		dir := t.TempDir()
		h, n, err := v1.SHA256(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
		os.WriteFile(filepath.Join(dir, "blobs", "sha256", h.Hex), raw, 0o644)
		idx, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, Manifests: []v1.Descriptor{{
			MediaType: types.MediaType(mediaType), Size: n, Digest: h, Annotations: map[string]string{refNameAnnotation: "x"},
		}}})
		os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
		ref, err := ParseRef("oci:" + dir + ":x")
		if err != nil {
			t.Fatal(err)
		}
		New(Options{}).Inspect(context.Background(), ref)
	})
}
