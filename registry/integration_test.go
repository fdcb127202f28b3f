package registry

// Integration tests against a real registry (the Debian docker-registry,
// distribution 2.8, started by internal/testregistry on 127.0.0.1) and a
// second client not written by kiln (skopeo). Each starts with
// testutil.Integration: `go test -short` skips them; under CI=true a
// missing tool fails them.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
)

// Every format goes through the real registry and comes back byte for
// byte, and a second client (skopeo) reads what kiln pushed: the digest it
// sees is the one Push reported, and it can copy the image out.
func TestIntegrationRoundTrip(t *testing.T) {
	testutil.Integration(t)
	sk := testregistry.NewSkopeo(t)
	reg := testregistry.Start(t, testregistry.Options{})
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			img, _ := testImage(t, "web", len(f))
			ref := reg.Host + "/kiln/" + string(f) + ":1.0"
			pushed := push(t, newClient(t, Options{}), img, ref, f)

			// Another machine: an empty cache, so the disk is downloaded.
			out, pulled := pullTo(t, newClient(t, Options{}), ref)
			if pulled.Format != f || pulled.Digest != pushed.Digest || pulled.DiskDigest != pushed.DiskDigest {
				t.Errorf("pulled %s %s (disk %s), pushed %s %s (disk %s)", pulled.Format, pulled.Digest, pulled.DiskDigest, f, pushed.Digest, pushed.DiskDigest)
			}
			if pulled.FromCache || pulled.BytesDownloaded == 0 {
				t.Errorf("pull with an empty cache: FromCache %v, BytesDownloaded %d", pulled.FromCache, pulled.BytesDownloaded)
			}
			sameFile(t, img, out)
			sameFile(t, manifest.PathFor(img), manifest.PathFor(out))

			// skopeo sees what Push reported.
			raw := sk.MustRun(t, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
			if got := sha256Digest(raw); got != pushed.Digest {
				t.Errorf("skopeo inspect --raw: digest %s, Push said %s\n%s", got, pushed.Digest, raw)
			}
			wantMT := types.OCIImageIndex
			if f == ContainerDisk {
				wantMT = types.OCIManifestSchema1
			}
			if mt := mediaTypeOf(t, raw); mt != wantMT {
				t.Errorf("skopeo inspect --raw: mediaType %q, want %q", mt, wantMT)
			}
		})
	}
}

// skopeo copies what kiln pushed out of the registry into an OCI layout,
// every format with every digest kept (--preserve-digests): a mirrored
// image keeps its signatures valid.
func TestIntegrationSkopeoCopy(t *testing.T) {
	testutil.Integration(t)
	sk := testregistry.NewSkopeo(t)
	reg := testregistry.Start(t, testregistry.Options{})
	for _, c := range []struct {
		f    Format
		args []string
	}{
		// The layer is an uncompressed tar; skopeo would gzip it for an
		// OCI layout (and so change its digest) without the flag.
		{ContainerDisk, []string{"--preserve-digests", "--dest-oci-accept-uncompressed-layers"}},
		// An index: every image in it (skopeo 1.9.3's --all is the same).
		{Podman, []string{"--preserve-digests", "--multi-arch", "all"}},
		{Native, []string{"--preserve-digests", "--multi-arch", "all"}},
	} {
		t.Run(string(c.f), func(t *testing.T) {
			img, _ := testImage(t, "web", len(c.f))
			ref := reg.Host + "/kiln/copy-" + string(c.f) + ":1"
			pushed := push(t, newClient(t, Options{}), img, ref, c.f)

			dir := filepath.Join(t.TempDir(), "oci")
			args := append([]string{"copy", "--src-tls-verify=false"}, c.args...)
			sk.MustRun(t, append(args, "docker://"+ref, "oci:"+dir+":x")...)
			top := layoutTop(t, dir, "x")
			if top.Digest.String() != pushed.Digest {
				t.Errorf("skopeo copy: the layout names %s, Push said %s", top.Digest, pushed.Digest)
			}
			raw, err := os.ReadFile(layoutBlob(dir, pushed.ImageDigest))
			if err != nil {
				t.Fatalf("skopeo copy: no image manifest %s in the layout: %v", pushed.ImageDigest, err)
			}
			var m v1.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if b, err := os.ReadFile(layoutBlob(dir, d.Digest.String())); err != nil || sha256Digest(b) != d.Digest.String() {
					t.Errorf("skopeo copy: blob %s (%s) missing or wrong in the layout (%v)", d.Digest, d.MediaType, err)
				}
			}
			if c.f == Native {
				// The disk blob is the qcow2 itself.
				sameFile(t, img, layoutBlob(dir, pushed.DiskDigest))
			}
		})
	}
}

// A containerDisk is what KubeVirt's virt-launcher expects, read with the
// registry's own API (no kiln code): one uncompressed tar layer with disk/
// and disk/disk.img owned by 107:107, the disk a qcow2 without a backing
// file, byte for byte the pushed one, and an ordinary OCI image config.
func TestIntegrationContainerDisk(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := testImage(t, "web", 3)
	pushed := push(t, newClient(t, Options{}), img, reg.Host+"/kubevirt/web:1", ContainerDisk)

	raw, mt := getManifest(t, reg.Host, "kubevirt/web", "1")
	if mt != types.OCIManifestSchema1 || sha256Digest(raw) != pushed.Digest || pushed.Digest != pushed.ImageDigest {
		t.Fatalf("tag 1: %s %s; Push said %s (image %s)", mt, sha256Digest(raw), pushed.Digest, pushed.ImageDigest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCIUncompressedLayer {
		t.Fatalf("not a containerDisk manifest (OCI config, one uncompressed tar layer):\n%s", raw)
	}

	var cfg v1.ConfigFile
	if err := json.Unmarshal(getBlob(t, reg.Host, "kubevirt/web", m.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.RootFS.Type != "layers" ||
		len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != m.Layers[0].Digest {
		t.Errorf("image config: os %q arch %q rootfs %+v; want linux, amd64, diff_ids [%s] (the uncompressed layer)",
			cfg.OS, cfg.Architecture, cfg.RootFS, m.Layers[0].Digest)
	}

	type entry struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
	}
	want := []entry{{"disk/", tar.TypeDir, 0o555, 107, 107}, {"disk/disk.img", tar.TypeReg, 0o440, 107, 107}}
	var got []entry
	disk := filepath.Join(t.TempDir(), "disk.img")
	tr := tar.NewReader(bytes.NewReader(getBlob(t, reg.Host, "kubevirt/web", m.Layers[0])))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("layer tar: %v", err)
		}
		got = append(got, entry{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid})
		if h.Name == "disk/disk.img" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(disk, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer entries:\n got %+v\nwant %+v", got, want)
	}
	sameFile(t, img, disk)
	info := qemuImgInfo(t, disk)
	if info["format"] != "qcow2" || info["virtual-size"] != float64(64<<20) {
		t.Errorf("disk/disk.img: qemu-img info says format %v, virtual size %v; want qcow2, %d", info["format"], info["virtual-size"], 64<<20)
	}
	for _, k := range []string{"backing-filename", "full-backing-filename", "backing-filename-format"} {
		if v, ok := info[k]; ok {
			t.Errorf("disk/disk.img has a backing file: %s = %v", k, v)
		}
	}
}

// A podman machine image is found the way podman machine init --image
// docker://… finds one: an index entry annotated disktype=qemu for
// linux/x86_64, whose manifest has exactly one layer titled
// NAME.x86_64.qemu.qcow2.zst, which unpacks (zstd) to the qcow2.
func TestIntegrationPodman(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := testImage(t, "machine", 5)
	pushed := push(t, newClient(t, Options{}), img, reg.Host+"/podman/machine-os:5.5", Podman)

	raw, mt := getManifest(t, reg.Host, "podman/machine-os", "5.5")
	if mt != types.OCIImageIndex || sha256Digest(raw) != pushed.Digest {
		t.Fatalf("tag 5.5: %s %s, Push said %s", mt, sha256Digest(raw), pushed.Digest)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var picked []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations["disktype"] == "qemu" && d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "x86_64" {
			picked = append(picked, d)
		}
	}
	if len(picked) != 1 || picked[0].Digest.String() != pushed.ImageDigest {
		t.Fatalf("index entries for disktype=qemu linux/x86_64: %+v; want one, %s\n%s", picked, pushed.ImageDigest, raw)
	}
	raw, _ = getManifest(t, reg.Host, "podman/machine-os", picked[0].Digest.String())
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("podman's disk manifest has %d layers, want 1:\n%s", len(m.Layers), raw)
	}
	if title := m.Layers[0].Annotations["org.opencontainers.image.title"]; title != "machine.x86_64.qemu.qcow2.zst" {
		t.Errorf("layer title %q, want machine.x86_64.qemu.qcow2.zst (podman picks NAME.x86_64.qemu.qcow2.zst)", title)
	}
	zr, err := zstd.NewReader(bytes.NewReader(getBlob(t, reg.Host, "podman/machine-os", m.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	qcow2, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	want, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(qcow2, want) {
		t.Errorf("the layer unpacks to %d bytes that are not the pushed qcow2 (%d bytes)", len(qcow2), len(want))
	}
}

// artifactManifestMediaType is the OCI 1.1-rc artifact manifest, dropped
// from the final spec and refused by many registries: kiln never writes one.
const artifactManifestMediaType = "application/vnd.oci.artifact.manifest.v1+json"

// distribution 2.8 has no referrers API: the kiln manifest and the SBOM
// are listed under the referrers tag schema's tag sha256-<hex of the image
// manifest>, with their artifactType; Inspect lists them; the SBOM is SPDX
// 2.3 with a pkg:deb purl per package. No manifest in the registry is an
// OCI artifact manifest.
func TestIntegrationReferrers(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	ctx := context.Background()
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			img, m := testImage(t, "web", 7+len(f))
			repo := "kiln/ref-" + string(f)
			ref := reg.Host + "/" + repo + ":1"
			c := newClient(t, Options{})
			pushed := push(t, c, img, ref, f)

			fallback := "sha256-" + strings.TrimPrefix(pushed.ImageDigest, "sha256:")
			raw, mt := getManifest(t, reg.Host, repo, fallback)
			if mt != types.OCIImageIndex {
				t.Fatalf("tag %s: %s, want an OCI index", fallback, mt)
			}
			idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			listed := map[string]string{} // artifactType -> digest
			for _, d := range idx.Manifests {
				listed[d.ArtifactType] = d.Digest.String()
			}
			want := map[string]string{}
			for _, r := range pushed.Referrers {
				want[r.ArtifactType] = r.Digest
			}
			if len(idx.Manifests) != 2 || !reflect.DeepEqual(listed, want) ||
				want[string(ManifestMediaType)] == "" || want[string(SBOMMediaType)] == "" {
				t.Fatalf("tag %s lists %v; Push attached %v; want the kiln manifest and the SBOM\n%s", fallback, listed, want, raw)
			}

			content := map[string][]byte{}
			for at, digest := range listed {
				raw, _ := getManifest(t, reg.Host, repo, digest)
				var am v1.Manifest
				if err := json.Unmarshal(raw, &am); err != nil {
					t.Fatal(err)
				}
				if am.ArtifactType != at || am.Subject == nil || am.Subject.Digest.String() != pushed.ImageDigest ||
					len(am.Layers) != 1 || string(am.Layers[0].MediaType) != at {
					t.Fatalf("referrer %s: artifactType %q, subject %v, layers %+v; want %s, subject %s, one %s layer",
						digest, am.ArtifactType, am.Subject, am.Layers, at, pushed.ImageDigest, at)
				}
				content[at] = getBlob(t, reg.Host, repo, am.Layers[0])
			}
			mjson, err := os.ReadFile(manifest.PathFor(img))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(content[string(ManifestMediaType)], mjson) {
				t.Errorf("the attached kiln manifest is not the image's manifest.json")
			}
			checkSBOM(t, content[string(SBOMMediaType)], m)

			info, err := c.Inspect(ctx, mustRef(t, ref))
			if err != nil {
				t.Fatalf("inspect: %v", err)
			}
			got := map[string]string{}
			for _, r := range info.Referrers {
				got[r.ArtifactType] = r.Digest
			}
			if !reflect.DeepEqual(got, want) || info.Digest != pushed.Digest || info.Format != f || info.Packages != len(m.Packages) {
				t.Errorf("inspect: referrers %v, digest %s, format %s, %d packages; want %v, %s, %s, %d",
					got, info.Digest, info.Format, info.Packages, want, pushed.Digest, f, len(m.Packages))
			}
		})
	}

	// Every manifest the registry stores, in every repository.
	n := 0
	root := filepath.Join(reg.Dir, "docker/registry/v2/repositories")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "link" || !strings.Contains(path, "/_manifests/revisions/") {
			return err
		}
		link, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		hex := strings.TrimPrefix(strings.TrimSpace(string(link)), "sha256:")
		b, err := os.ReadFile(filepath.Join(reg.Dir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data"))
		if err != nil {
			return err
		}
		n++
		if mt := mediaTypeOf(t, b); mt == artifactManifestMediaType || mt == "" {
			t.Errorf("%s: manifest of media type %q", path, mt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// At least kiln's index, image, 2 referrers and referrers index, the
	// same for podman and all but the index for containerdisk (the
	// referrers index is rewritten for each referrer: older revisions stay).
	if n < 14 {
		t.Errorf("%d manifests in the registry, want at least 14", n)
	}
}

// checkSBOM checks an SPDX 2.3 JSON SBOM against the manifest it lists:
// one package per Debian package, each with its pkg:deb purl, the version
// percent-encoded (purl-spec: ':' and '+' are not bare in a version).
func checkSBOM(t *testing.T, b []byte, m *manifest.Manifest) {
	t.Helper()
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		DataLicense string `json:"dataLicense"`
		Packages    []struct {
			Name         string `json:"name"`
			VersionInfo  string `json:"versionInfo"`
			ExternalRefs []struct {
				Category string `json:"referenceCategory"`
				Type     string `json:"referenceType"`
				Locator  string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("SBOM: %v\n%s", err, b)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" {
		t.Errorf("SBOM: spdxVersion %q, dataLicense %q; want SPDX-2.3, CC0-1.0", doc.SPDXVersion, doc.DataLicense)
	}
	// Written out, not computed with kiln's own escaping.
	want := map[string]string{
		"bash":           "pkg:deb/debian/bash@5.2.37-2?arch=amd64",
		"libc6":          "pkg:deb/debian/libc6@2.41-12?arch=amd64",
		"python3-jinja2": "pkg:deb/debian/python3-jinja2@1%3A3.1.6-1%2Bb1?arch=all",
	}
	if len(m.Packages) != len(want) {
		t.Fatalf("testImage lists %d packages; this check knows %d", len(m.Packages), len(want))
	}
	got := map[string]int{}
	for _, p := range doc.Packages {
		for _, r := range p.ExternalRefs {
			if r.Type != "purl" {
				continue
			}
			got[p.Name]++
			if w, ok := want[p.Name]; !ok || r.Category != "PACKAGE-MANAGER" || !strings.HasPrefix(r.Locator, w) {
				t.Errorf("SBOM: package %s (%s): %s purl %q, want %q…", p.Name, p.VersionInfo, r.Category, r.Locator, w)
			}
		}
	}
	for _, p := range m.Packages {
		if got[p.Name] != 1 {
			t.Errorf("SBOM: %d purls for package %s, want 1", got[p.Name], p.Name)
		}
	}
	if len(got) != len(m.Packages) {
		t.Errorf("SBOM: purls for %v, want one for each of the %d manifest packages", got, len(m.Packages))
	}
}

// A blob the registry has is not sent again: re-pushing sends 0 bytes;
// pushing to another repository of the same registry, with the same
// cache, mounts the disk from the first (POST ?mount=…&from=… answered
// 201 Created) instead of uploading it.
func TestIntegrationMount(t *testing.T) {
	testutil.Integration(t)
	reg := testregistry.Start(t, testregistry.Options{})
	img, _ := testImage(t, "web", 11)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: http.DefaultTransport}
	c := newClient(t, Options{Transport: rec}) // one cache for every push

	first := push(t, c, img, reg.Host+"/team/a:1", Native)
	if first.BlobBytesSent != st.Size() {
		t.Errorf("first push: BlobBytesSent %d, want the disk's %d", first.BlobBytesSent, st.Size())
	}
	rec.reset()
	again := push(t, c, img, reg.Host+"/team/a:1", Native)
	if again.BlobBytesSent != 0 || again.Digest != first.Digest {
		t.Errorf("re-push: BlobBytesSent %d (want 0), digest %s (want %s)", again.BlobBytesSent, again.Digest, first.Digest)
	}
	if up := rec.uploads("/v2/team/a/"); len(up) != 0 {
		t.Errorf("re-push uploaded: %v", up)
	}

	rec.reset()
	other := push(t, c, img, reg.Host+"/team/b:1", Native)
	if other.BlobBytesSent != 0 {
		t.Errorf("push to another repository: BlobBytesSent %d, want 0 (mounted)", other.BlobBytesSent)
	}
	mount := "mount=" + first.DiskDigest
	mounted := false
	var sent int64
	for _, r := range rec.all() {
		if r.method == "POST" && strings.HasPrefix(r.path, "/v2/team/b/blobs/uploads/") &&
			strings.Contains(r.query, "from=team%2Fa") && strings.Contains(r.query, strings.ReplaceAll(mount, ":", "%3A")) && r.status == http.StatusCreated {
			mounted = true
		}
		if strings.HasPrefix(r.path, "/v2/team/b/blobs/uploads/") && (r.method == "PATCH" || r.method == "PUT") {
			sent += r.sent
		}
	}
	if !mounted {
		t.Errorf("no cross-repository mount of %s from team/a answered 201; requests:\n%s", first.DiskDigest, rec)
	}
	// The config, the kiln manifest and the SBOM are uploaded; the disk is not.
	if sent >= 64<<10 {
		t.Errorf("%d bytes uploaded to team/b, more than its small blobs; requests:\n%s", sent, rec)
	}
	out, _ := pullTo(t, newClient(t, Options{}), reg.Host+"/team/b:1")
	sameFile(t, img, out)
}

// --- helpers -------------------------------------------------------------

// newClient is a client with a cache of its own and short retry delays
// (tests inject failures; the backoff is not what they check).
func newClient(t testing.TB, opts Options) *Client {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 10 * time.Millisecond
	}
	return New(opts)
}

func mustRef(t testing.TB, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t testing.TB, c *Client, img, ref string, f Format) *PushResult {
	t.Helper()
	res, err := c.Push(context.Background(), PushRequest{Image: img, Ref: mustRef(t, ref), Format: f})
	if err != nil {
		t.Fatalf("push %s (%s): %v", ref, f, err)
	}
	return res
}

// pullTo pulls ref into a fresh directory.
func pullTo(t testing.TB, c *Client, ref string) (string, *PullResult) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pulled.qcow2")
	res, err := c.Pull(context.Background(), PullRequest{Ref: mustRef(t, ref), Out: out})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return out, res
}

// nothingAt fails unless out does not exist and its directory holds
// nothing else either: no manifest, no temp file, no scratch dir.
func nothingAt(t testing.TB, out string) {
	t.Helper()
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists after a failed pull (%v)", out, err)
	}
	ents, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left beside the output of a failed pull", e.Name())
	}
}

func sha256Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func mediaTypeOf(t testing.TB, raw []byte) types.MediaType {
	t.Helper()
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a manifest: %v\n%s", err, raw)
	}
	return m.MediaType
}

// layoutTop is the descriptor tag names in an OCI layout's index.json.
func layoutTop(t testing.TB, dir, tag string) v1.Descriptor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[refNameAnnotation] == tag {
			return d
		}
	}
	t.Fatalf("%s: no %q in index.json:\n%s", dir, tag, b)
	return v1.Descriptor{}
}

func layoutBlob(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// manifestAccept is every manifest media type kiln and the tests use.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ", ")

// getManifest reads a manifest straight from the registry's HTTP API (no
// kiln code involved) and checks it against the digest the registry names.
func getManifest(t testing.TB, host, repo, ref string) ([]byte, types.MediaType) {
	t.Helper()
	b, mt, status := tryGetManifest(t, host, repo, ref)
	if status != http.StatusOK {
		t.Fatalf("GET %s/%s manifest %s: %d\n%s", host, repo, ref, status, b)
	}
	return b, mt
}

func tryGetManifest(t testing.TB, host, repo, ref string) ([]byte, types.MediaType, int) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+host+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		if d := resp.Header.Get("Docker-Content-Digest"); d != sha256Digest(b) {
			t.Fatalf("GET %s/%s manifest %s: Docker-Content-Digest %s, body %s", host, repo, ref, d, sha256Digest(b))
		}
	}
	return b, types.MediaType(resp.Header.Get("Content-Type")), resp.StatusCode
}

// getBlob reads a blob straight from the registry and verifies its digest.
func getBlob(t testing.TB, host, repo string, d v1.Descriptor) []byte {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/blobs/" + d.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || sha256Digest(b) != d.Digest.String() || int64(len(b)) != d.Size {
		t.Fatalf("GET blob %s from %s/%s: %s, %d bytes, digest %s", d.Digest, host, repo, resp.Status, len(b), sha256Digest(b))
	}
	return b
}

// qemuImgInfo is `qemu-img info --output json` of a file.
func qemuImgInfo(t testing.TB, path string) map[string]any {
	t.Helper()
	bin := testutil.NeedTool(t, "qemu-img")
	out, err := exec.Command(bin, "info", "--output", "json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info map[string]any
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	return info
}

// recorder is a client transport that records every request: method,
// path, query, request body bytes sent and the status answered.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []*recorded
}

type recorded struct {
	method, path, query string
	sent                int64
	status              int
	body                *countingBody
}

type countingBody struct {
	io.ReadCloser
	mu sync.Mutex
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	b.n += int64(n)
	b.mu.Unlock()
	return n, err
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &recorded{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery}
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		rec.body = &countingBody{ReadCloser: req.Body}
		req.Body = rec.body
	}
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		rec.status = resp.StatusCode
	}
	r.reqs = append(r.reqs, rec)
	return resp, err
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// all is a snapshot of the requests, with the bytes their bodies sent.
func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]recorded, len(r.reqs))
	for i, q := range r.reqs {
		out[i] = *q
		if q.body != nil {
			q.body.mu.Lock()
			out[i].sent = q.body.n
			q.body.mu.Unlock()
		}
	}
	return out
}

// uploads lists the PATCH and PUT requests to blob uploads under prefix.
func (r *recorder) uploads(prefix string) []string {
	var out []string
	for _, q := range r.all() {
		if (q.method == "PATCH" || q.method == "PUT") && strings.HasPrefix(q.path, prefix) && strings.Contains(q.path, "/blobs/uploads/") {
			out = append(out, fmt.Sprintf("%s %s (%d bytes)", q.method, q.path, q.sent))
		}
	}
	return out
}

func (r *recorder) String() string {
	var b strings.Builder
	for _, q := range r.all() {
		fmt.Fprintf(&b, "  %s %s?%s -> %d (%d bytes sent)\n", q.method, q.path, q.query, q.status, q.sent)
	}
	return b.String()
}
