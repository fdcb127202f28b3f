package testregistry

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
	skopeo := testutil.NeedTool(t, "skopeo")
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

	sk := newSkopeo(t, skopeo)
	// --preserve-digests: skopeo fails rather than rewrite the manifest.
	sk.run(t, "copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+dir+":smoke", "docker://"+r.Host+"/smoke:1")

	for _, host := range []string{r.Host, p.Host} {
		var info struct{ Digest string }
		if err := json.Unmarshal(sk.run(t, "inspect", "--tls-verify=false", "docker://"+host+"/smoke:1"), &info); err != nil {
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

// skopeoRunner runs skopeo on its own configuration only: an
// accept-anything policy, no registries.conf or registries.d of the
// host, and a HOME and runtime dir without auth files.
type skopeoRunner struct {
	bin   string
	flags []string
	env   []string
}

func newSkopeo(t testing.TB, bin string) skopeoRunner {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("policy.json", `{"default":[{"type":"insecureAcceptAnything"}]}`)
	registries := write("registries.conf", "unqualified-search-registries = []\n")
	home := mkdir("home")
	return skopeoRunner{
		bin: bin,
		flags: []string{
			"--policy", policy,
			"--registries-conf", registries,
			"--registries.d", mkdir("registries.d"),
			"--tmpdir", mkdir("tmp"),
		},
		env: append(os.Environ(),
			"HOME="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_RUNTIME_DIR="+mkdir("run"),
			"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
			"CONTAINERS_REGISTRIES_CONF="+registries,
		),
	}
}

// run runs skopeo with args and returns its stdout; a failure fails the
// test with stderr.
func (s skopeoRunner) run(t testing.TB, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append(append([]string{}, s.flags...), args...)...)
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("skopeo %v: %v\n%s", args, err, stderr)
	}
	return out
}
