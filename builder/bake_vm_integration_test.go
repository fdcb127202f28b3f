package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/fetch"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testguest"
	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/lint"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
)

// plainImage bakes testdata/plain.yaml offline: a bootable image to use as
// the base of VM bakes, like a vendor cloud image: on the default release,
// without kiln's boot tuning (cloud-init's stock units and configuration).
func plainImage(t *testing.T, extra string) string {
	t.Helper()
	src, err := os.ReadFile("testdata/plain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "plain.yaml")
	os.WriteFile(p, append(src, extra...), 0o644)
	plan, err := recipes.LoadPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "plain.qcow2")
	stock := New(Options{CacheDir: testutil.CacheDir(t), NoBootTuning: true})
	if _, err := stock.Bake(context.Background(), plan, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeRecipe writes a recipe next to a copy (hard link) of base.
func writeRecipe(t *testing.T, base, body string) string {
	t.Helper()
	dir := t.TempDir()
	if base != "" {
		if err := os.Link(base, filepath.Join(dir, "base.qcow2")); err != nil {
			b, _ := os.ReadFile(base)
			os.WriteFile(filepath.Join(dir, "base.qcow2"), b, 0o644)
		}
	}
	p := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(p, []byte(body), 0o644)
	return p
}

const vmRecipe = `apiVersion: kiln/v1
name: kiln-it-vm
base: %s
roles:
  - app-host:
      name: web
      port: 8080
      script: |
        #!/usr/bin/python3
        import http.server, os
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = open("/etc/kiln-it/greeting").read().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
bake:
  packages: [tree]
  files:
    - {path: /etc/kiln-it/greeting, content: "baked in a VM\n"}
  commands:
    - [sh, -c, "tree --version > /etc/kiln-it/tree-version"]
checks:
  - http: {port: 8080, path: /, contains: baked in a VM}
  - command: {run: "test -s /etc/kiln-it/tree-version"}
disk: {size: 3GiB, firmware: [bios]}
`

// TestVMBake: an image made by kiln, standing in for a vendor cloud image,
// served over HTTP (from 127.0.0.1) with its checksum, is the base of a
// recipe baked by booting it. A wrong checksum fails before any VM boots;
// the right one gives a standalone, clean image that records its base,
// grows to disk.size, and passes its checks in a booted guest, with no
// first-boot work left for the guest. On the default release the base's
// cloud-init runs every stage in one process: a tuning that masked a stage
// unit would leave the final stage waiting and the checks unrun. (File
// bases boot in the failure tests below.)
func TestVMBake(t *testing.T) {
	needBakeTools(t)
	testutil.NeedGuest(t)
	ctx := context.Background()
	base := plainImage(t, "")
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(base))))
	defer srv.Close()
	baseDigest, _ := digest.File(base)
	url := srv.URL + "/" + filepath.Base(base)

	bad, err := recipes.LoadPlan(writeRecipe(t, "", fmt.Sprintf(vmRecipe, url+"#sha256="+strings.Repeat("0", 64))))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	_, err = newTestBuilder(t, ev).Bake(ctx, bad, filepath.Join(t.TempDir(), "bad.qcow2"))
	var ce *fetch.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("wrong checksum: want a checksum error, got %v", err)
	}
	if ev.saw("vm-bake", progress.Start, "") {
		t.Error("a VM booted a base whose checksum was wrong")
	}

	// The good URL downloads and checks out (without a boot: the VM bake
	// below boots a base from a registry, which takes the same path from
	// here on).
	urlPlan, err := recipes.LoadPlan(writeRecipe(t, "", fmt.Sprintf(vmRecipe, url+"#sha256="+baseDigest.Hex)))
	if err != nil {
		t.Fatal(err)
	}
	urlBase, err := recipes.ParseBase(urlPlan.Recipe.Base)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := newTestBuilder(t, nil).resolveImageBase(ctx, urlPlan, urlBase)
	if err != nil {
		t.Fatal(err)
	}
	if ub.SHA256 != baseDigest.Hex || ub.Ref != url || ub.Format != "qcow2" {
		t.Errorf("URL base: %+v", ub)
	}
	ub.release()

	// The base as a fleet would get it: from a registry (the real
	// docker-registry), pulled, verified and recorded by digest.
	reg := testregistry.Start(t, testregistry.Options{})
	ref, err := registry.ParseRef(reg.Host + "/bases/plain:1")
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := registry.New(registry.Options{CacheDir: t.TempDir()}).Push(ctx, registry.PushRequest{Image: base, Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := recipes.LoadPlan(writeRecipe(t, "", fmt.Sprintf(vmRecipe, "oci://"+reg.Host+"/bases/plain:1")))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "vm.qcow2")
	res, err := newTestBuilder(t, nil).Bake(ctx, plan, out)
	if err != nil {
		t.Fatal(err)
	}
	wantRef := "oci://" + reg.Host + "/bases/plain@" + pushed.Digest
	if res.Info.Base.Digest != baseDigest.String() || res.Info.Base.Ref != wantRef || res.Info.Build.Mode != "vm" || res.Info.Package("tree") == "" {
		t.Errorf("manifest: base %+v (want ref %s), mode %s", res.Info.Base, wantRef, res.Info.Build.Mode)
	}
	info, err := qemu.Img{}.Info(ctx, out)
	if err != nil || info.BackingFile != "" || info.VirtualSize != 3<<30 || info.Compression != "zstd" {
		t.Fatalf("not a standalone 3 GiB zstd image: %+v %v", info, err)
	}
	if rep, err := lint.Image(ctx, out); err != nil || !rep.Clean() {
		t.Fatalf("lint: %v %+v", err, rep)
	}
	reports, err := imagetest.Run(ctx, imagetest.ForPlan(out, plan), imagetest.Options{Boot: testguest.Runner(), BootTimeout: 8 * time.Minute, Inspect: func(ctx context.Context, g *imagetest.Guest) error {
		// growpart grew the root to the bigger disk.
		out, _, err := g.Exec(ctx, "df --output=size -B1M / | tail -1")
		if err != nil {
			return err
		}
		var mb int
		fmt.Sscan(strings.TrimSpace(out), &mb)
		if mb < 2500 {
			return fmt.Errorf("the root filesystem is %d MiB, not grown to the 3 GiB disk", mb)
		}
		// The bake settled what first boot would otherwise redo.
		out, _, err = g.Exec(ctx, "systemctl show -p ExecMainStartTimestampMonotonic --value ldconfig.service systemd-journal-catalog-update.service")
		if err != nil {
			return err
		}
		if strings.Trim(out, "0\n") != "" {
			return fmt.Errorf("first boot rebuilt the linker cache or journal catalog: %q", out)
		}
		// bake-finish found sshd's check to be ssh.service's only
		// ExecStartPre in the base and left it out (startChecks); the SSH
		// this test runs over proves sshd started.
		out, _, err = g.Exec(ctx, "systemctl show -p ExecStartPre --value ssh.service; echo end")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "end" {
			return fmt.Errorf("ssh.service still runs a start check: %q", out)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := reports[0]; !r.OK {
		t.Fatalf("%s\n%s", r.Error, r.ConsoleTail)
	}
}

// TestVMBakeWithoutCloudInit: a base whose cloud-init never runs makes the
// bake time out with a message that says so.
func TestVMBakeWithoutCloudInit(t *testing.T) {
	needBakeTools(t)
	testutil.NeedGuest(t)
	base := plainImage(t, "bake:\n  commands:\n    - [touch, /etc/cloud/cloud-init.disabled]\n")
	plan, err := recipes.LoadPlan(writeRecipe(t, base, "apiVersion: kiln/v1\nname: kiln-it-nocloud\nbase: ./base.qcow2\ndisk: {firmware: [bios]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := New(Options{CacheDir: testutil.CacheDir(t), Boot: testguest.Runner(), BakeTimeout: 75 * time.Second})
	out := filepath.Join(t.TempDir(), "x.qcow2")
	_, err = b.Bake(context.Background(), plan, out)
	if err == nil || !strings.Contains(err.Error(), "cloud-init never reported") || !strings.Contains(err.Error(), "last console lines") {
		t.Fatalf("want a timeout saying cloud-init never reported, got %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("an image was written")
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*vmbake").Output(); len(out) > 0 {
		t.Errorf("QEMU left running: %s", out)
	}
}

// TestImageBaseErrors: a missing base, or a file that is not a disk image,
// is refused before anything boots, naming what the file is.
func TestImageBaseErrors(t *testing.T) {
	testutil.Integration(t)
	qimg := testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte(strings.Repeat("not a disk\n", 200000)), 0o644)
	os.WriteFile(filepath.Join(dir, "blank.img"), make([]byte, 2<<20), 0o644)
	if out, err := exec.Command(qimg, "create", "-q", "-f", "vmdk", filepath.Join(dir, "disk.vmdk"), "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for base, want := range map[string]string{
		"./missing.qcow2": "no such file",
		"./notes.txt":     "not a disk image",
		"./blank.img":     "neither a partition table nor a boot sector",
		"./disk.vmdk":     "is a vmdk image",
	} {
		p := filepath.Join(dir, "r.yaml")
		os.WriteFile(p, []byte("apiVersion: kiln/v1\nname: x\nbase: "+base+"\n"), 0o644)
		plan, err := recipes.LoadPlan(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = newTestBuilder(t, nil).Bake(context.Background(), plan, filepath.Join(dir, "out.qcow2"))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "r.yaml:3:7: base") {
			t.Errorf("base %s: want %q at the base line, got %v", base, want, err)
		}
	}
}

// TestVMBakeOfPackageBase: bake.mode vm on a package base bakes the base
// offline into an image, then boots it once to apply the recipe: a cloud
// image without any download.
func TestVMBakeOfPackageBase(t *testing.T) {
	needBakeTools(t)
	testutil.NeedGuest(t)
	p := writeRecipe(t, "", `apiVersion: kiln/v1
name: kiln-it-forced-vm
bake:
  mode: vm
  packages: [tree]
  files:
    - {path: /etc/kiln-it/greeting, content: "baked in a VM\n"}
  commands:
    - [sh, -c, "tree --version > /etc/kiln-it/tree-version"]
disk: {size: 2GiB, firmware: [bios]}
`)
	plan, err := recipes.LoadPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "forced.qcow2")
	res, err := newTestBuilder(t, nil).Bake(context.Background(), plan, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.Build.Mode != "vm" || res.Info.Base.Kind != "image" || !strings.HasPrefix(res.Info.Base.Digest, "sha256:") ||
		res.Info.Package("tree") == "" {
		t.Errorf("manifest: mode %s, base %+v, tree %q", res.Info.Build.Mode, res.Info.Base, res.Info.Package("tree"))
	}
	if rep, err := lint.Image(context.Background(), out); err != nil || !rep.Clean() {
		t.Fatalf("lint: %v %+v", err, rep)
	}
	fsys, closer, err := disk.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	for path, want := range map[string]string{"etc/kiln-it/greeting": "baked in a VM\n", "etc/kiln-it/tree-version": "tree v"} {
		if b, err := fs.ReadFile(fsys, path); err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("%s: %q %v, want %q", path, b, err, want)
		}
	}
}

// TestVMBakeGuestNeverPowersOff: a guest that cleans itself but ignores
// both its own power-off and the ACPI power button fails the bake after the
// grace periods, with a warning first, no image and no QEMU left behind.
func TestVMBakeGuestNeverPowersOff(t *testing.T) {
	needBakeTools(t)
	testutil.NeedGuest(t)
	base := plainImage(t, "bake:\n  commands:\n    - [ln, -sf, /dev/null, /etc/systemd/system/poweroff.target]\n")
	plan, err := recipes.LoadPlan(writeRecipe(t, base, "apiVersion: kiln/v1\nname: kiln-it-nopoweroff\nbase: ./base.qcow2\ndisk: {firmware: [bios]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	var mu sync.Mutex
	sink := progress.Func(func(e progress.Event) {
		if e.Kind == progress.Warn {
			mu.Lock()
			warnings = append(warnings, e.Msg)
			mu.Unlock()
		}
	})
	b := New(Options{CacheDir: testutil.CacheDir(t), Boot: testguest.Runner(), Progress: sink, PowerOffGrace: 20 * time.Second, BakeTimeout: 15 * time.Minute})
	out := filepath.Join(t.TempDir(), "x.qcow2")
	// The power-off grace ends the bake (the error names ACPI), not its
	// 15-minute timeout.
	_, err = b.Bake(context.Background(), plan, out)
	if err == nil || !strings.Contains(err.Error(), "did not power off") || !strings.Contains(err.Error(), "ACPI") {
		t.Fatalf("want an error saying the guest did not power off, got %v", err)
	}
	mu.Lock()
	if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, "power button") }) {
		t.Errorf("no warning before pressing the power button: %q", warnings)
	}
	mu.Unlock()
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("an image was written")
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*vmbake").Output(); len(out) > 0 {
		t.Errorf("QEMU left running: %s", out)
	}
}
