package registry

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/kiln-project/kiln/manifest"
)

// roundTrip pushes an image in a format and pulls it back; the disk and
// the manifest come back byte for byte.
func roundTrip(t *testing.T, c *Client, ref string, f Format) (*PushResult, *PullResult) {
	t.Helper()
	img, _ := testImage(t, "web", int(len(f)))
	r, err := ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pushed, err := c.Push(ctx, PushRequest{Image: img, Ref: r, Format: f})
	if err != nil {
		t.Fatalf("push %s: %v", f, err)
	}
	out := filepath.Join(t.TempDir(), "pulled.qcow2")
	pulled, err := c.Pull(ctx, PullRequest{Ref: r, Out: out})
	if err != nil {
		t.Fatalf("pull %s: %v", f, err)
	}
	if pulled.Format != f {
		t.Errorf("pulled format %q, pushed %q", pulled.Format, f)
	}
	if pulled.Digest != pushed.Digest {
		t.Errorf("pull resolved %s, push wrote %s", pulled.Digest, pushed.Digest)
	}
	sameFile(t, img, out)
	sameFile(t, manifest.PathFor(img), manifest.PathFor(out))
	return pushed, pulled
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ (%d vs %d bytes)", a, b, len(x), len(y))
	}
}

func TestRoundTripLayout(t *testing.T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			c := New(Options{CacheDir: t.TempDir()})
			roundTrip(t, c, "oci:"+filepath.Join(t.TempDir(), "store")+":web", f)
		})
	}
}

// In-memory registry of go-containerregistry: a fast check of the remote
// path; the real registry runs in the integration tests.
func TestRoundTripInMemoryRegistry(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			c := New(Options{CacheDir: t.TempDir()})
			roundTrip(t, c, host+"/kiln/"+string(f)+":1", f)
		})
	}
}

// An image edited after its bake (same size, other bytes) is refused,
// whether the store would receive the bytes (it checks the digest) or
// has the manifest's blob already (kiln hashes the file first), and the
// tag is not moved.
func TestPushRefusesAChangedImage(t *testing.T) {
	ctx := context.Background()
	c := New(Options{CacheDir: t.TempDir()})
	for _, have := range []bool{false, true} {
		img, _ := testImage(t, "web", 3)
		ref, _ := ParseRef("oci:" + filepath.Join(t.TempDir(), "store") + ":web")
		var before string
		if have {
			res, err := c.Push(ctx, PushRequest{Image: img, Ref: ref})
			if err != nil {
				t.Fatal(err)
			}
			before = res.Digest
		}
		f, err := os.OpenFile(img, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("edited"), 1<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = c.Push(ctx, PushRequest{Image: img, Ref: ref, Annotations: map[string]string{"x": "y"}})
		if err == nil {
			t.Fatalf("store has blob %v: a changed image was pushed", have)
		}
		if have && !strings.Contains(err.Error(), "changed after it was baked") {
			t.Errorf("error does not say the image changed: %v", err)
		}
		info, ierr := c.Inspect(ctx, ref)
		switch {
		case have && (ierr != nil || info.Digest != before):
			t.Errorf("the tag moved after a refused push: %v %v", info, ierr)
		case !have && ierr == nil:
			t.Errorf("a refused push left a tag: %+v", info)
		}
	}
}
