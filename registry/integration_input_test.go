package registry

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
)

// A registry with users: a wrong password is refused by CheckLogin, naming
// the user; a push without credentials says "not authorized"; with the
// credentials SaveLogin wrote to the docker config file (found through
// DOCKER_CONFIG by the default keychain) push and pull work.
func TestIntegrationAuth(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{Users: map[string]string{"alice": "s3cret"}})
	// No credentials but the ones this test writes.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(home, "auth.json"))
	ctx := context.Background()
	c := newClient(t, Options{})

	err := c.CheckLogin(ctx, reg.Host, "alice", "wrong")
	if err == nil || !strings.Contains(err.Error(), `user "alice" was refused`) || !strings.Contains(err.Error(), reg.Host) {
		t.Errorf("CheckLogin with a wrong password: %v; want the registry and `user \"alice\" was refused`", err)
	}
	t.Logf("CheckLogin with a wrong password: %v", err)
	if err := c.CheckLogin(ctx, reg.Host, "alice", "s3cret"); err != nil {
		t.Errorf("CheckLogin with the right password: %v", err)
	}

	img, _ := testImage(t, "web", 23)
	ref := reg.Host + "/private/web:1"
	_, err = c.Push(ctx, PushRequest{Image: img, Ref: mustRef(t, ref), Format: Native})
	if err == nil || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("push without credentials: %v; want an error saying not authorized", err)
	}
	t.Logf("push without credentials: %v", err)

	cfg, err := DockerConfigPath()
	if err != nil {
		t.Fatal(err)
	}
	if cfg != filepath.Join(home, "docker", "config.json") {
		t.Fatalf("DockerConfigPath %s, want the one under DOCKER_CONFIG", cfg)
	}
	if err := SaveLogin(cfg, reg.Host, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600", cfg, err, st.Mode().Perm())
	}
	pushed := push(t, c, img, ref, Native)
	out, pulled := pullTo(t, newClient(t, Options{}), ref)
	if pulled.Digest != pushed.Digest {
		t.Errorf("pulled %s, pushed %s", pulled.Digest, pushed.Digest)
	}
	sameFile(t, img, out)
}

// A tag that is not there: the error names the reference and says not
// found, and nothing is written.
func TestIntegrationPullUnknownTag(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := testImage(t, "web", 29)
	push(t, newClient(t, Options{}), img, reg.Host+"/kiln/web:1", Native)
	for _, ref := range []string{reg.Host + "/kiln/web:2", reg.Host + "/kiln/nothing:1"} {
		out := filepath.Join(t.TempDir(), "pulled.qcow2")
		_, err := newClient(t, Options{}).Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out})
		if err == nil || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "not found") {
			t.Errorf("pull %s: %v; want an error naming it and saying not found", ref, err)
		}
		nothingAt(t, out)
	}
}

// Malformed references are *RefErrors naming what was written.
func TestParseRefMalformed(t *testing.T) {
	for _, s := range []string{
		"",
		" registry.example.com/web:1",
		"UPPER/case:x",
		"registry.example.com/UPPER/case:x",
		"host/repo:bad tag",
		"registry.example.com/repo:bad tag",
		"registry.example.com/repo@sha256:abc",
		"oci:",
		"oci::tag",
		"oci:./store:bad tag",
		"ftp://x/y",
		"web:1", // no registry host: kiln never guesses Docker Hub
	} {
		_, err := ParseRef(s)
		var re *RefError
		if !errors.As(err, &re) || re.Ref != s {
			t.Errorf("ParseRef(%q): %v, want a *RefError for it", s, err)
		}
	}
}

// The fix for "web:1" keeps hosts with ports and loopback names working.
func TestParseRefWellFormed(t *testing.T) {
	for _, s := range []string{
		"localhost/web:1",
		"localhost:5000/web:1",
		"127.0.0.1:5000/team/web:1.2",
		"registry.example.com/team/web",
		"registry.example.com/team/web@sha256:" + strings.Repeat("ab", 32),
		"oci://registry.example.com/team/web:1.2",
		"docker://registry.example.com/team/web:1.2",
		"oci:./store:web",
	} {
		if _, err := ParseRef(s); err != nil {
			t.Errorf("ParseRef(%q): %v", s, err)
		}
	}
}

// Images kiln cannot use are refused by name, after which nothing is at
// the output path: an index without linux/amd64, an image whose layer is
// not a disk, and a disk with a backing file.
func TestIntegrationPullRefuses(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	ctx := context.Background()

	arm, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	arm, err = mutate.ConfigFile(arm, &v1.ConfigFile{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	armIndex := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}},
	})
	if err := remote.WriteIndex(ggcrRef(t, reg.Host+"/other/arm:1"), armIndex); err != nil {
		t.Fatal(err)
	}

	notDisk, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ggcrRef(t, reg.Host+"/other/app:1"), notDisk); err != nil {
		t.Fatal(err)
	}
	octets, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("#!/bin/sh\necho hello\n"), "application/octet-stream"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ggcrRef(t, reg.Host+"/other/blob:1"), octets); err != nil {
		t.Fatal(err)
	}

	pushNative(t, reg.Host+"/other/overlay:1", overlayQcow2(t))

	for _, c := range []struct {
		ref  string
		want string
		is   error
	}{
		{reg.Host + "/other/arm:1", "no linux/amd64 image (it has: linux/arm64)", nil},
		{reg.Host + "/other/app:1", "not a disk", nil},
		{reg.Host + "/other/blob:1", "not a disk", nil},
		{reg.Host + "/other/overlay:1", "backing file", image.ErrBackingFile},
	} {
		out := filepath.Join(t.TempDir(), "pulled.qcow2")
		_, err := newClient(t, Options{}).Pull(ctx, PullRequest{Ref: mustRef(t, c.ref), Out: out})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.ref) {
			t.Errorf("pull %s: %v; want an error naming it and saying %q", c.ref, err, c.want)
		}
		t.Logf("pull %s: %v", c.ref, err)
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("pull %s: %v is not %v", c.ref, err, c.is)
		}
		nothingAt(t, out)
	}
}

// Ctrl-C in the middle of the disk: the pull ends with context.Canceled,
// writes nothing, keeps what it got under CacheDir/blobs/partial, and the
// next pull downloads only the rest.
func TestIntegrationPullCancelResumes(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := bigTestImage(t, "big", 2, 24<<20)
	size := fileSize(t, img)
	ref := reg.Host + "/kiln/big:1"
	pushed := push(t, newClient(t, Options{}), img, ref, Native)

	cache := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	sink := progress.Func(func(e progress.Event) {
		if e.Step == "pull" && e.Kind == progress.Advance && e.Done > 0 {
			once.Do(cancel) // the user presses Ctrl-C
		}
	})
	out := filepath.Join(t.TempDir(), "pulled.qcow2")
	_, err := newClient(t, Options{CacheDir: cache, Progress: sink}).Pull(ctx, PullRequest{Ref: mustRef(t, ref), Out: out})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v, want context.Canceled", err)
	}
	nothingAt(t, out)
	partial := filepath.Join(cache, "blobs/partial", strings.TrimPrefix(pushed.DiskDigest, "sha256:"))
	kept := fileSize(t, partial)
	if kept == 0 || kept >= size {
		t.Fatalf("%s: %d bytes kept of %d", partial, kept, size)
	}

	res, err := newClient(t, Options{CacheDir: cache}).Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out})
	if err != nil {
		t.Fatalf("pull after Ctrl-C: %v", err)
	}
	if res.BytesDownloaded != size-kept {
		t.Errorf("pull after Ctrl-C downloaded %d bytes; %d of %d were kept, so want %d", res.BytesDownloaded, kept, size, size-kept)
	}
	sameFile(t, img, out)
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after the pull completed (%v)", partial, err)
	}
}

func ggcrRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// overlayQcow2 is a qcow2 whose backing file is another qcow2 beside it,
// as `qemu-img create -b base.qcow2 -F qcow2` makes it.
func overlayQcow2(t testing.TB) string {
	t.Helper()
	bin := testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	base, overlay := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "overlay.qcow2")
	for _, args := range [][]string{
		{"create", "-f", "qcow2", base, "64M"},
		{"create", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
	}
	if info := qemuImgInfo(t, overlay); info["backing-filename"] != base {
		t.Fatalf("%s: backing file %v, want %s", overlay, info["backing-filename"], base)
	}
	return overlay
}

// pushNative publishes disk the way kiln's native format does (index,
// linux/amd64 manifest, kiln config, the file as its layer) without going
// through Push, which refuses a disk with a backing file: an image made
// by someone else.
func pushNative(t testing.TB, ref, disk string) {
	t.Helper()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	r := ggcrRef(t, ref)
	cfg, err := json.Marshal(Config{Name: "overlay", Format: "qcow2", VirtualSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(b, DiskMediaType)
	cfgLayer := static.NewLayer(cfg, ConfigMediaType)
	for _, l := range []v1.Layer{layer, cfgLayer} {
		if err := remote.WriteLayer(r.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer, mt types.MediaType) v1.Descriptor {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{MediaType: mt, Digest: d, Size: n}
	}
	ld := desc(layer, DiskMediaType)
	ld.Annotations = map[string]string{AnnotationTitle: "overlay.qcow2"}
	m, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: string(ArtifactType),
		Config: desc(cfgLayer, ConfigMediaType), Layers: []v1.Descriptor{ld},
	})
	if err != nil {
		t.Fatal(err)
	}
	md, mn, err := v1.SHA256(strings.NewReader(string(m)))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r.Context().Digest(md.String()), rawManifest{m, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIManifestSchema1, Digest: md, Size: mn, Platform: &v1.Platform{OS: "linux", Architecture: "amd64"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawManifest{idx, types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
}

// rawManifest is manifest bytes for remote.Put.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
