package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/disk/imagediff"
	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testguest"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/lint"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// events records progress events, to see which steps ran.
type events struct {
	mu sync.Mutex
	ev []progress.Event
}

func (e *events) Emit(ev progress.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *events) saw(step string, kind progress.Kind, msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.ev {
		if ev.Step == step && ev.Kind == kind && strings.Contains(ev.Msg, msg) {
			return true
		}
	}
	return false
}

func needBakeTools(t *testing.T) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedRoot(t)
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "qemu-img", "grub-mkimage", "unshare", "tar"} {
		testutil.NeedTool(t, tool)
	}
}

// recipeVariant writes testdata/web.yaml, edited by replacing old with new,
// into a temp dir and compiles it.
func recipeVariant(t *testing.T, edits ...string) *recipes.Plan {
	t.Helper()
	b, err := os.ReadFile("testdata/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("recipe has no %q to edit", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	p := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := recipes.LoadPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func newTestBuilder(t *testing.T, sink progress.Sink) *Builder {
	return New(Options{CacheDir: testutil.CacheDir(t), Progress: sink, Boot: testguest.Runner()})
}

// TestBakeArtifact is the golden path offline: bake a role image from
// packages and check the artifact with the reference tools, its manifest
// against the schema and the files, and kiln lint. (Booting kiln's images
// is the examples' job: every role boots there, under BIOS and UEFI.)
func TestBakeArtifact(t *testing.T) {
	needBakeTools(t)
	ctx := context.Background()
	plan := recipeVariant(t)
	out := filepath.Join(t.TempDir(), "web.qcow2")
	b := newTestBuilder(t, nil)
	res, err := b.Bake(ctx, plan, out)
	if err != nil {
		t.Fatal(err)
	}
	img := qemu.Img{}
	if err := img.Check(ctx, out); err != nil {
		t.Fatalf("qemu-img check: %v", err)
	}
	info, err := img.Info(ctx, out)
	if err != nil || info.Format != "qcow2" || info.Compression != "zstd" || info.BackingFile != "" || info.VirtualSize != 2<<30 {
		t.Fatalf("qemu-img info: %+v %v", info, err)
	}
	m, err := manifest.Read(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	outDigest, _ := digest.File(out)
	if m.Artifacts[0].SHA256 != outDigest.String() || m.Artifacts[0].Size != outDigest.Size || m.Disk.FileSize != outDigest.Size {
		t.Errorf("manifest artifact %+v, file %+v", m.Artifacts[0], outDigest)
	}
	if m.Package("tree") == "" || m.OS.CloudInit == "" || m.OS.Systemd == "" || m.OS.Kernel == "" || m.Recipe.Digest != plan.Digest || len(m.Checks) != 3 {
		t.Errorf("manifest content: %+v %+v", m.OS, m.Recipe)
	}
	// The manifest names the recipe it came from, relative to itself, so
	// kiln test can find it.
	if got := m.RecipePath(res.Manifest); got != plan.Recipe.File() {
		t.Errorf("manifest names recipe %q, want %q", got, plan.Recipe.File())
	}
	rep, err := lint.Image(ctx, out)
	if err != nil || !rep.Clean() {
		t.Fatalf("kiln lint on kiln's own image: %v %+v", err, rep)
	}
	root := openImageRoot(t, out)
	checkSmallInitramfs(t, root)
	checkKernelCmdline(t, root)
}

// openImageRoot is the root file system of a disk image, open until the
// test ends.
func openImageRoot(t *testing.T, image string) fs.FS {
	t.Helper()
	fsys, closer, err := disk.OpenRoot(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	return fsys
}

// checkKernelCmdline: a tuned image boots its kernel with boot tuning's
// command line (that the kernel took it is the examples' test, in a guest).
func checkKernelCmdline(t *testing.T, fsys fs.FS) {
	t.Helper()
	b, err := fs.ReadFile(fsys, "boot/grub/grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), " "+disk.DefaultCmdline+" cryptomgr.notests\n") {
		t.Errorf("grub.cfg does not boot with boot tuning's command line:\n%s", b)
	}
}

// checkSmallInitramfs: a tuned image's initramfs holds the disk drivers of
// virtual machines and not the rest of MODULES=most, nor udev's hardware
// database. (That it boots is the examples' test, under BIOS and UEFI.)
func checkSmallInitramfs(t *testing.T, fsys fs.FS) {
	t.Helper()
	initrds, _ := fs.Glob(fsys, "boot/initrd.img-*")
	if len(initrds) != 1 {
		t.Fatalf("initramfs images in /boot: %v", initrds)
	}
	b, err := fs.ReadFile(fsys, initrds[0])
	if err != nil {
		t.Fatal(err)
	}
	paths, err := initramfsPaths(b)
	if err != nil {
		t.Fatalf("%s: %v", initrds[0], err)
	}
	has := func(suffix string) bool {
		for _, p := range paths {
			if p = "/" + strings.TrimPrefix(p, "/"); strings.HasSuffix(p, suffix) || strings.Contains(p, suffix+".ko") {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"/virtio_blk", "/virtio_scsi", "/ahci", "/usr/bin/udevadm", "/init"} {
		if !has(want) {
			t.Errorf("the initramfs (%d files, %d bytes) lacks %s", len(paths), len(b), want)
		}
	}
	for _, unwanted := range []string{"/btrfs", "/xfs", "/mlx5_core", "/hwdb.bin"} {
		if has(unwanted) {
			t.Errorf("the initramfs (%d files, %d bytes) still has %s", len(paths), len(b), unwanted)
		}
	}
}

// TestBakeCache: an unchanged recipe re-bakes from the cache; a changed
// bake section rebuilds the image but reuses the base.
func TestBakeCache(t *testing.T) {
	needBakeTools(t)
	ctx := context.Background()
	dir := t.TempDir()
	first, err := newTestBuilder(t, nil).Bake(ctx, recipeVariant(t), filepath.Join(dir, "a.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	again, err := newTestBuilder(t, ev).Bake(ctx, recipeVariant(t), filepath.Join(dir, "b.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Info.Artifacts[0].SHA256 != first.Info.Artifacts[0].SHA256 || ev.saw("base", progress.Start, "") {
		t.Errorf("unchanged recipe was rebuilt: cached=%v", again.Cached)
	}
	// Rebuilt twice on purpose (--no-cache) from the same base: the same
	// bytes (issue 16), and so not one file of the guest differs either.
	var digests []string
	for _, name := range []string{"rebuilt1.qcow2", "rebuilt2.qcow2"} {
		nb := New(Options{CacheDir: testutil.CacheDir(t), NoCache: true, Boot: testguest.Runner()})
		rebuilt, err := nb.Bake(ctx, recipeVariant(t), filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if rebuilt.Cached {
			t.Error("a --no-cache bake came from the cache")
		}
		if b := rebuilt.Info.Build; b.SourceDateEpochFrom != manifest.EpochFromPackages || b.SourceDateEpoch < time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix() {
			t.Errorf("manifest build: %+v; want the epoch from the packages, a 2025 date or later", b)
		}
		digests = append(digests, rebuilt.Info.Artifacts[0].SHA256)
	}
	if r, err := imagediff.Images(ctx, filepath.Join(dir, "rebuilt1.qcow2"), filepath.Join(dir, "rebuilt2.qcow2")); err != nil || !r.Empty() {
		t.Errorf("two rebuilds of the same recipe differ: %v\n%+v", err, r)
	}
	if digests[0] != digests[1] {
		t.Errorf("two rebuilds of the same recipe are not the same bytes: %s and %s", digests[0], digests[1])
	}
	// A bake section no earlier run has baked: the test cache outlives runs.
	ev = &events{}
	cb := newTestBuilder(t, ev)
	changed, err := cb.Bake(ctx, recipeVariant(t, "baked by kiln", fmt.Sprintf("baked again at %d", time.Now().UnixNano())), filepath.Join(dir, "c.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(cb.cache.path("images", changed.Key)) })
	if changed.Cached || changed.Key == first.Key {
		t.Error("changed bake section reused the old image")
	}
	if !ev.saw("base", progress.Start, "unpacking the cached") || ev.saw("base", progress.Start, "mmdebstrap") {
		t.Error("changed bake section rebuilt the base")
	}
	// A boot-only change does not change the image at all.
	bootOnly, err := newTestBuilder(t, nil).Bake(ctx, recipeVariant(t, `hostname: "web-{index}"`, `hostname: "www-{index}"`), filepath.Join(dir, "d.qcow2"))
	if err != nil || !bootOnly.Cached {
		t.Errorf("boot-only change rebuilt the image: %v", err)
	}
}

// TestBakeUnknownPackage: named, placed in the recipe, before any disk work.
func TestBakeUnknownPackage(t *testing.T) {
	needBakeTools(t)
	out := filepath.Join(t.TempDir(), "x.qcow2")
	ev := &events{}
	_, err := newTestBuilder(t, ev).Bake(context.Background(), recipeVariant(t, "packages: [tree]", "packages: [tree, kiln-no-such-package]"), out)
	var el recipes.ErrorList
	if !errors.As(err, &el) || !strings.Contains(err.Error(), `unknown package "kiln-no-such-package"`) || !strings.Contains(err.Error(), "web.yaml:") || !strings.Contains(err.Error(), "bake.packages[1]") {
		t.Fatalf("want a positioned unknown-package error, got %v", err)
	}
	if ev.saw("assemble", progress.Start, "") {
		t.Error("disk work started despite the unknown package")
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("an image was written")
	}
}

// TestBakeFailingCommand: the error quotes the command's output and exit
// code, and no image is written.
func TestBakeFailingCommand(t *testing.T) {
	needBakeTools(t)
	out := filepath.Join(t.TempDir(), "x.qcow2")
	_, err := newTestBuilder(t, nil).Bake(context.Background(),
		recipeVariant(t, `- [sh, -c, "tree --version > /etc/kiln-it/tree-version"]`, `- [sh, -c, "echo the migration broke >&2; exit 7"]`), out)
	if err == nil || !strings.Contains(err.Error(), "exit code 7") || !strings.Contains(err.Error(), "the migration broke") || !strings.Contains(err.Error(), "bake.commands[0]") {
		t.Fatalf("want the command's exit code and output, got %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("an image was written")
	}
	entries, _ := os.ReadDir(filepath.Join(testutil.CacheDir(t), "tmp"))
	for _, e := range entries {
		if strings.Contains(e.Name(), fmt.Sprintf(".%d.", os.Getpid())) {
			t.Errorf("work directory left behind: %s", e.Name())
		}
	}
}

// TestTestUnbootableKernel: an image whose kernel is gone fails kiln test
// quickly, quoting the console.
func TestTestUnbootableKernel(t *testing.T) {
	needBakeTools(t)
	testutil.NeedGuest(t)
	ctx := context.Background()
	plan := recipeVariant(t, `- [sh, -c, "tree --version > /etc/kiln-it/tree-version"]`, `- [sh, -c, "rm -f /boot/vmlinuz-*"]`)
	out := filepath.Join(t.TempDir(), "broken.qcow2")
	if _, err := newTestBuilder(t, nil).Bake(ctx, plan, out); err != nil {
		t.Fatal(err)
	}
	// The console's verdict ends the wait ("cannot boot"), not the timeout.
	reports, err := imagetest.Run(ctx, imagetest.ForPlan(out, plan), imagetest.Options{Boot: testguest.Runner(), Firmware: []string{"bios"}, BootTimeout: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	if r.OK || !strings.Contains(r.Error, "cannot boot") || r.ConsoleTail == "" {
		t.Fatalf("want a boot failure with the console tail, got %+v", r)
	}
}

// TestBakeFormats: zlib-compressed qcow2 and raw images on request, each
// equal in content to the default zstd image of the same recipe.
func TestBakeFormats(t *testing.T) {
	needBakeTools(t)
	ctx := context.Background()
	dir := t.TempDir()
	img := qemu.Img{}
	for _, c := range []struct{ disk, format, compression string }{
		{"disk: {size: 2GiB, compression: zlib}", "qcow2", "zlib"},
		{"disk: {size: 2GiB, format: raw}", "raw", ""},
	} {
		out := filepath.Join(dir, "x."+c.format)
		if _, err := newTestBuilder(t, nil).Bake(ctx, recipeVariant(t, "disk: {size: 2GiB}", c.disk), out); err != nil {
			t.Fatal(err)
		}
		info, err := img.Info(ctx, out)
		if err != nil || info.Format != c.format || info.Compression != c.compression || info.VirtualSize != 2<<30 {
			t.Errorf("%s: %+v %v", c.disk, info, err)
		}
		if rep, err := lint.Image(ctx, out); err != nil || !rep.Clean() {
			t.Errorf("%s: lint %v %+v", c.disk, err, rep)
		}
	}
}
