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
