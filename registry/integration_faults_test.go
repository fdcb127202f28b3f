package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
)

// A pull through a flaky network still gets the image, and resumes
// instead of starting over: a 500, a 429, two connection resets in the
// middle of the disk and a cut body cost at most about half the disk
// again (a restart after each cut would cost 1.6 times it).
func TestIntegrationPullResumes(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	p := testregistry.NewFaultProxy(t, reg)
	img, _ := bigTestImage(t, "big", 1, 24<<20)
	size := fileSize(t, img)
	pushed := push(t, newClient(t, Options{}), img, reg.Host+"/kiln/big:1", Native)

	// Only the disk blob: the config and the referrers are read whole,
	// and are not what this test is about.
	blob := "/blobs/" + pushed.DiskDigest
	cut := size / 5
	faults := []testregistry.Fault{
		{Method: "GET", PathContains: blob, Kind: testregistry.Status, Code: 500, Times: 1},
		{Method: "GET", PathContains: blob, Kind: testregistry.Status, Code: 429, Times: 1},
		{Method: "GET", PathContains: blob, Kind: testregistry.DropAfter, Bytes: cut, MinSize: 1 << 20, Times: 2},
		{Method: "GET", PathContains: blob, Kind: testregistry.Truncate, Bytes: cut, MinSize: 1 << 20, Times: 1},
	}
	for _, f := range faults {
		p.Add(f)
	}
	out, res := pullTo(t, newClient(t, Options{}), p.Host+"/kiln/big:1")
	sameFile(t, img, out)
	for _, f := range faults {
		if n := p.Hits()[f]; n != f.Times {
			t.Errorf("fault %v injected %d times, want %d", f, n, f.Times)
		}
	}
	limit := size * 155 / 100
	if served := p.BytesServed(pushed.DiskDigest); served > limit {
		t.Errorf("the proxy served %d bytes of a %d-byte disk: more than 1.55 times, so not resumed", served, size)
	}
	if res.BytesDownloaded < size || res.BytesDownloaded > limit {
		t.Errorf("BytesDownloaded %d for a %d-byte disk: want between 1 and 1.55 times it", res.BytesDownloaded, size)
	}
	t.Logf("disk %d bytes; served %d, downloaded %d", size, p.BytesServed(pushed.DiskDigest), res.BytesDownloaded)
}

// A push through a flaky network completes: a 500 starting an upload, a
// 429 and a reset on the upload's body, a reset and a 503 on its commit,
// a 502 on a manifest. What it published pulls back byte for byte.
func TestIntegrationPushRetries(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	p := testregistry.NewFaultProxy(t, reg)
	img, _ := testImage(t, "web", 13)
	faults := []testregistry.Fault{
		{Method: "POST", PathContains: "/blobs/uploads/", Kind: testregistry.Status, Code: 500, Times: 1},
		{Method: "PATCH", PathContains: "/blobs/uploads/", Kind: testregistry.Status, Code: 429, Times: 1},
		{Method: "PATCH", PathContains: "/blobs/uploads/", Kind: testregistry.DropRequest, Times: 1},
		{Method: "PUT", PathContains: "/blobs/uploads/", Kind: testregistry.DropRequest, Times: 1},
		{Method: "PUT", PathContains: "/blobs/uploads/", Kind: testregistry.Status, Code: 503, Times: 1},
		{Method: "PUT", PathContains: "/manifests/", Kind: testregistry.Status, Code: 502, Times: 1},
	}
	for _, f := range faults {
		p.Add(f)
	}
	pushed := push(t, newClient(t, Options{}), img, p.Host+"/kiln/flaky:1", Native)
	for _, f := range faults {
		if n := p.Hits()[f]; n != f.Times {
			t.Errorf("fault %v injected %d times, want %d", f, n, f.Times)
		}
	}
	// Straight from the registry, with another cache.
	out, res := pullTo(t, newClient(t, Options{}), reg.Host+"/kiln/flaky:1")
	if res.Digest != pushed.Digest {
		t.Errorf("pulled %s, pushed %s", res.Digest, pushed.Digest)
	}
	sameFile(t, img, out)
}

// A blob whose bytes are not its digest (bit rot in the registry, or
// tampering) is refused with a *DigestError; nothing appears at the
// output path and nothing corrupt stays in the cache, so once the blob is
// good again the next pull succeeds.
func TestIntegrationPullCorruptBlob(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := testImage(t, "web", 17)
	ref := reg.Host + "/kiln/rot:1"
	pushed := push(t, newClient(t, Options{}), img, ref, Native)

	hex := strings.TrimPrefix(pushed.DiskDigest, "sha256:")
	stored := filepath.Join(reg.Dir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
	good, err := os.ReadFile(stored)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff // same size: only the digest can tell
	if err := os.WriteFile(stored, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	cache := t.TempDir()
	c := newClient(t, Options{CacheDir: cache})
	out := filepath.Join(t.TempDir(), "pulled.qcow2")
	_, err = c.Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out})
	var de *DigestError
	if !errors.As(err, &de) {
		t.Fatalf("pull of a corrupt blob: %v, want a *DigestError", err)
	}
	if de.Want.String() != pushed.DiskDigest || de.Got == de.Want {
		t.Errorf("DigestError want %s got %s; the disk is %s", de.Want, de.Got, pushed.DiskDigest)
	}
	t.Logf("pull of a corrupt blob: %v", err)
	nothingAt(t, out)
	for _, p := range []string{filepath.Join(cache, "blobs/sha256", hex), filepath.Join(cache, "blobs/partial", hex)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s kept after a digest mismatch (%v)", p, err)
		}
	}

	if err := os.WriteFile(stored, good, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := c.Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out})
	if err != nil {
		t.Fatalf("pull once the blob is good again: %v", err)
	}
	if res.FromCache || res.BytesDownloaded != int64(len(good)) {
		t.Errorf("second pull: FromCache %v, BytesDownloaded %d; want a fresh download of %d bytes", res.FromCache, res.BytesDownloaded, len(good))
	}
	sameFile(t, img, out)
}

// A registry that is down fails the pull with an error that names the
// image, and writes nothing; once it is back, the same pull works.
func TestIntegrationRegistryDown(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := testImage(t, "web", 19)
	ref := reg.Host + "/kiln/down:1"
	push(t, newClient(t, Options{}), img, ref, Native)

	reg.Stop()
	c := newClient(t, Options{})
	out := filepath.Join(t.TempDir(), "pulled.qcow2")
	_, err := c.Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out})
	if err == nil {
		t.Fatal("pull from a stopped registry succeeded")
	}
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("pull from a stopped registry: %q does not name %s", err, ref)
	}
	t.Logf("pull from a stopped registry: %v", err)
	nothingAt(t, out)

	reg.Restart(t)
	if _, err := c.Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out}); err != nil {
		t.Fatalf("pull once the registry is back: %v", err)
	}
	sameFile(t, img, out)
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
