package registry

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
)

// testImage makes a small real qcow2 with some data and the kiln manifest
// beside it, as a bake would. Its name is NAME.qcow2 in a temp dir.
func testImage(t testing.TB, name string, fill int) (string, *manifest.Manifest) {
	t.Helper()
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte((i*7 + fill) % 251)
	}
	return testImageOf(t, name, fill, data)
}

// bigTestImage is testImage with size bytes of incompressible data (a
// ChaCha8 stream seeded by fill) in the disk: a qcow2 of about size bytes,
// for tests that need a blob big enough to cut in the middle.
func bigTestImage(t testing.TB, name string, fill int, size int) (string, *manifest.Manifest) {
	t.Helper()
	var seed [32]byte
	seed[0] = byte(fill)
	data := make([]byte, size)
	rand.NewChaCha8(seed).Read(data)
	return testImageOf(t, name, fill, data)
}

// testImageOf makes the qcow2 of testImage with data as its first bytes.
func testImageOf(t testing.TB, name string, fill int, data []byte) (string, *manifest.Manifest) {
	t.Helper()
	qemuImg := testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, name+".raw")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, name+".qcow2")
	if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", raw, img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	if out, err := exec.Command(qemuImg, "resize", "-f", "qcow2", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img resize: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Kiln:          manifest.Kiln{Version: "test", ImageLayout: "test"},
		Recipe:        manifest.Recipe{Name: name, File: name + ".yaml", Digest: "sha256:" + fmtHex(fill), ImageKey: fmtHex(fill + 1), Roles: []string{"app-host"}},
		Base:          manifest.Base{Ref: "debian:trixie", Kind: manifest.BasePackages, Suite: "trixie"},
		OS:            manifest.OS{Distro: "Debian", Release: "13", Kernel: "6.12.0", CloudInit: "25.1", Systemd: "257"},
		Disk:          manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios", "uefi"}, VirtualSize: 64 << 20, FileSize: n},
		Packages: []manifest.Package{
			{Name: "bash", Version: "5.2.37-2", Arch: "amd64"},
			{Name: "libc6", Version: "2.41-12", Arch: "amd64"},
			{Name: "python3-jinja2", Version: "1:3.1.6-1+b1", Arch: "all"},
		},
		Artifacts: []manifest.Artifact{{Name: name + ".qcow2", Size: n, SHA256: h.String()}},
		Checks:    []manifest.Check{},
		Build:     manifest.Build{Mode: "offline", SourceDateEpoch: 1767225600},
	}
	if err := manifest.Write(manifest.PathFor(img), m); err != nil {
		t.Fatal(err)
	}
	return img, m
}

func fmtHex(n int) string {
	const hexd = "0123456789abcdef"
	b := make([]byte, 64)
	for i := range b {
		b[i] = hexd[(i+n)%16]
	}
	return string(b)
}
