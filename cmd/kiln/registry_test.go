package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
)

// smallImage writes a small real qcow2 and the kiln manifest beside it.
func smallImage(t *testing.T, dir string) string {
	t.Helper()
	qemuImg := testutil.NeedTool(t, "qemu-img")
	img := filepath.Join(dir, "web.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	h, n := fileDigest(t, img)
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		Kiln:          manifest.Kiln{Version: "test", ImageLayout: "test"},
		Recipe:        manifest.Recipe{Name: "web", File: "web.yaml", Digest: "sha256:" + h.Hex, ImageKey: h.Hex[:32], Roles: []string{"app-host"}},
		Base:          manifest.Base{Ref: "debian:trixie", Kind: manifest.BasePackages, Suite: "trixie"},
		OS:            manifest.OS{Distro: "debian", Release: "trixie", Kernel: "6.12", CloudInit: "25.1", Systemd: "257"},
		Disk:          manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios"}, VirtualSize: 64 << 20, FileSize: n},
		Packages:      []manifest.Package{{Name: "bash", Version: "5.2.37-2", Arch: "amd64"}},
		Artifacts:     []manifest.Artifact{{Name: "web.qcow2", Size: n, SHA256: h.String()}},
		Checks:        []manifest.Check{},
		Build:         manifest.Build{Mode: "offline", SourceDateEpoch: 1767225600},
	}
	if err := manifest.Write(manifest.PathFor(img), m); err != nil {
		t.Fatal(err)
	}
	return img
}

// The registry commands as a user runs them, on an OCI layout directory
// (the registry itself is the registry package's integration tests' job):
// generate a key, push signed, inspect, pull verified; another key's pull
// fails with nothing written; bad references are usage errors.
func TestPushInspectPullCLI(t *testing.T) {
	dir := t.TempDir()
	smallImage(t, dir)
	env := []string{"KILN_KEY_PASSPHRASE="}
	cache := []string{"--cache-dir", filepath.Join(dir, "cache")}
	must := func(args ...string) map[string]any {
		t.Helper()
		r := run(t, dir, env, append(args, "-O", "json")...)
		if r.code != 0 {
			t.Fatalf("kiln %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return envelopeOf(t, r)["data"].(map[string]any)
	}
	must("key", "generate", "-o", "k")
	must("key", "generate", "-o", "other")
	pushed := must(append([]string{"push", "web.qcow2", "oci:store:web", "--sign", "k.key"}, cache...)...)
	if pushed["signature"] == "" || pushed["format"] != "kiln" || len(pushed["referrers"].([]any)) != 2 {
		t.Fatalf("push: %v", pushed)
	}
	info := must(append([]string{"inspect", "oci:store:web"}, cache...)...)
	if info["digest"] != pushed["digest"] || info["signatures"] != 1.0 || info["format"] != "kiln" || len(info["referrers"].([]any)) != 2 || info["packages"] != 1.0 {
		t.Fatalf("inspect: %v", info)
	}
	pulled := must(append([]string{"pull", "oci:store:web", "-o", "out/web.qcow2", "--verify", "k.pub"}, cache...)...)
	if pulled["verified"] != true || pulled["digest"] != pushed["digest"] {
		t.Fatalf("pull: %v", pulled)
	}
	sameBytes(t, filepath.Join(dir, "web.qcow2"), filepath.Join(dir, "out", "web.qcow2"))
	sameBytes(t, filepath.Join(dir, "web.manifest.json"), filepath.Join(dir, "out", "web.manifest.json"))

	r := run(t, dir, env, append([]string{"pull", "oci:store:web", "-o", "other.qcow2", "--verify", "other.pub"}, cache...)...)
	if r.code != 1 || !bytes.Contains([]byte(r.stderr), []byte("no signature from this key")) {
		t.Errorf("pull with another key: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.qcow2")); err == nil {
		t.Error("a pull that failed verification wrote its output")
	}
	for _, args := range [][]string{
		{"pull", "store:web", "-o", "x.qcow2"},                        // no registry host
		{"pull", "ftp://example.com/x", "-o", "x.qcow2"},              // unknown scheme
		{"push", "web.qcow2", "oci:store:web", "--format", "tarball"}, // unknown format
		{"push", "missing.qcow2", "oci:store:web"},
		{"pull", "oci:store:nosuchtag", "-o", "x.qcow2"}, // not there, like a missing file
	} {
		if r := run(t, dir, env, args...); r.code != 2 {
			t.Errorf("kiln %v: exit %d, want 2 (usage)\n%s", args, r.code, r.stderr)
		}
	}
}

// kiln lint takes a reference: the image is pulled, then linted (this
// blank disk has no root filesystem, which lint reports for the reference).
func TestLintReference(t *testing.T) {
	dir := t.TempDir()
	smallImage(t, dir)
	if r := run(t, dir, nil, "push", "web.qcow2", "oci:store:web"); r.code != 0 {
		t.Fatalf("push: %d %s", r.code, r.stderr)
	}
	r := run(t, dir, nil, "lint", "oci:store:web", "-O", "json")
	env := envelopeOf(t, r)
	results := env["data"].(map[string]any)["reports"].([]any)
	res := results[0].(map[string]any)
	if r.code == 0 || res["image"] != "oci:store:web" || res["error"] == nil {
		t.Fatalf("lint of a pulled blank disk: exit %d %v\n%s", r.code, res, r.stderr)
	}
	if !bytes.Contains([]byte(r.stdout), []byte(`"step": "pull"`)) && !bytes.Contains([]byte(r.stdout), []byte(`"step":"pull"`)) {
		t.Errorf("lint did not pull the reference:\n%s", r.stdout)
	}
}

func sameBytes(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ (%v %v)", a, b, err1, err2)
	}
}

// Disk full while pulling: kiln pull fails saying so, with nothing at the
// output path; with room, the same pull succeeds. The output and cache
// live on a small tmpfs in a mount namespace of the test's own.
func TestPullDiskFull(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedRoot(t)
	unshare := testutil.NeedTool(t, "unshare")
	qemuImg := testutil.NeedTool(t, "qemu-img")
	reg := testregistry.Start(t, testregistry.Options{})
	dir := t.TempDir()
	smallImage(t, dir)
	// 16 MiB of data that does not compress: a disk bigger than the tmpfs.
	raw := make([]byte, 16<<20)
	rand.Read(raw)
	os.WriteFile(filepath.Join(dir, "data.raw"), raw, 0o644)
	if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", filepath.Join(dir, "data.raw"), filepath.Join(dir, "web.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rewriteArtifact(t, filepath.Join(dir, "web.qcow2"))
	ref := reg.Host + "/kiln/full:1"
	if r := run(t, dir, nil, "push", "web.qcow2", ref); r.code != 0 {
		t.Fatalf("push: %d %s", r.code, r.stderr)
	}
	pullOn := func(size string) (result, string) {
		mnt := t.TempDir()
		// Runs the pull, then lists what is in the output's directory.
		script := `mnt=$1; shift; mount -t tmpfs -o size=` + size + ` tmpfs "$mnt" || exit 99; "$@"; rc=$?; ls -A "$mnt/out"; exit $rc`
		cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", mnt,
			kilnBin, "pull", ref, "-o", filepath.Join(mnt, "out", "web.qcow2"), "--cache-dir", filepath.Join(mnt, "cache"))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{out.String(), errb.String(), code}, mnt
	}
	r, _ := pullOn("8m")
	t.Logf("kiln pull onto a full disk: %s", r.stderr)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
		t.Fatalf("pull onto a full disk: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "web.qcow2") {
		t.Errorf("a pull that ran out of space left its output:\n%s", r.stdout)
	}
	if r, _ := pullOn("128m"); r.code != 0 || !strings.Contains(r.stdout, "web.qcow2") {
		t.Fatalf("pull with room: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// rewriteArtifact updates the manifest beside img to img's digest and size.
func rewriteArtifact(t *testing.T, img string) {
	t.Helper()
	m, err := manifest.Read(manifest.PathFor(img))
	if err != nil {
		t.Fatal(err)
	}
	h, n := fileDigest(t, img)
	m.Artifacts[0].SHA256, m.Artifacts[0].Size, m.Disk.FileSize = h.String(), n, n
	if err := manifest.Write(manifest.PathFor(img), m); err != nil {
		t.Fatal(err)
	}
}

// fileDigest is a file's sha256 and size.
func fileDigest(t *testing.T, path string) (v1.Hash, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}
