package testregistry

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-project/kiln/internal/testutil"
)

// A second client, not written by us, pushes to the registry and reads
// back what it pushed: skopeo copies a tiny OCI layout in and inspects it,
// directly and through the fault proxy.
func TestSkopeoSmoke(t *testing.T) {
	testutil.Integration(t)
	sk := NewSkopeo(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)

	img := tinyOCIImage(t)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "smoke",
	})); err != nil {
		t.Fatal(err)
	}

	// --preserve-digests: skopeo fails rather than rewrite the manifest.
	sk.MustRun(t, "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+dir+":smoke", "docker://"+r.Host+"/smoke:1")

	for _, host := range []string{r.Host, p.Host} {
		var info struct{ Digest string }
		if err := json.Unmarshal(sk.MustRun(t, "inspect", "--tls-verify=false", "docker://"+host+"/smoke:1"), &info); err != nil {
			t.Fatalf("skopeo inspect via %s: %v", host, err)
		}
		if info.Digest != want.String() {
			t.Errorf("skopeo inspect via %s: digest %s, want %s", host, info.Digest, want)
		}
	}

	// The registry itself names the same digest.
	req, err := http.NewRequest("HEAD", r.URL()+"/v2/smoke/manifests/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", string(types.OCIManifestSchema1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != want.String() {
		t.Errorf("registry: manifest digest %q (%s), want %s", got, resp.Status, want)
	}
}

// tinyOCIImage is one random 1 KiB layer in an OCI manifest (random.Image
// would make Docker media types).
func tinyOCIImage(t testing.TB) v1.Image {
	t.Helper()
	layer, err := random.Layer(1024, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
