package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// hostFileMarker is what the "host file" of the tests below prints when a
// guest boots it: seeing it means QEMU opened a backing file kiln did not
// state.
const hostFileMarker = "HOST-FILE-READ"

// qemuImgCreate runs qemu-img create with args in dir.
func qemuImgCreate(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(testutil.NeedTool(t, "qemu-img"), append([]string{"create", "-q"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestMachine_UnstatedBackingNotOpened boots a qcow2 whose header names a
// backing file kiln did not state: a bootable "host file" that prints
// hostFileMarker. QEMU must not open it: the qcow2 reads as zeros, and
// SeaBIOS says on its debug console that the disk is not bootable. A
// header naming a file that does not exist must not keep QEMU from
// starting either.
func TestMachine_UnstatedBackingNotOpened(t *testing.T) {
	dir := t.TempDir()
	host := writeBootDiskSaying(t, filepath.Join(dir, "host.img"), modePowerOff, hostFileMarker)
	for _, backing := range []string{host, filepath.Join(dir, "no", "such", "file")} {
		t.Run(filepath.Base(backing), func(t *testing.T) {
			work := t.TempDir()
			hostile := filepath.Join(work, "hostile.qcow2")
			qemuImgCreate(t, work, "-f", "qcow2", "-u", "-b", backing, "-F", "raw", hostile, "1M")
			c := bootConfig(t, hostile)
			c.Drives[0].Format = "qcow2"
			seabios := filepath.Join(work, "seabios.log")
			c.ExtraArgs = []string{"-chardev", "file,id=seabios,path=" + seabios, "-device", "isa-debugcon,iobase=0x402,chardev=seabios"}
			m := start(t, context.Background(), c, work)
			log := waitFile(t, m, seabios, "Boot failed: not a bootable disk", 30*time.Second)
			if console, _ := os.ReadFile(m.SerialLog()); strings.Contains(string(console), hostFileMarker) {
				t.Fatalf("the guest booted the backing file the header named: console %q", console)
			}
			t.Logf("SeaBIOS: %q", lastLines(log, 6))
		})
	}
}

// waitFile waits until the file at path contains substr and returns it,
// failing the test when QEMU exits or the time runs out first.
func waitFile(t *testing.T, m *Machine, path, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), substr) {
			return string(b)
		}
		console, _ := os.ReadFile(m.SerialLog())
		select {
		case <-m.Done():
			t.Fatalf("QEMU exited before %s showed %q: %v\nconsole: %q\n%s: %q", filepath.Base(path), substr, m.Wait(context.Background()), console, filepath.Base(path), lastLines(string(b), 5))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not show %q within %v\nconsole: %q\n%s: %q", filepath.Base(path), substr, timeout, console, filepath.Base(path), lastLines(string(b), 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMachine_BootsThroughKilnChain boots a two-deep chain kiln made with
// CreateOverlay, stated whole: the boot sector is only in the raw base at
// the bottom, so the marker on the console shows QEMU read through both
// overlays to it.
func TestMachine_BootsThroughKilnChain(t *testing.T) {
	img := newImg(t)
	dir := t.TempDir()
	base := writeBootDisk(t, dir, modePowerOff)
	mid, top := filepath.Join(dir, "mid.qcow2"), filepath.Join(dir, "top.qcow2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := img.CreateOverlay(ctx, base, "raw", mid, 0); err != nil {
		t.Fatal(err)
	}
	if err := img.CreateOverlay(ctx, "mid.qcow2", "qcow2", top, 0); err != nil {
		t.Fatal(err)
	}
	c := bootConfig(t, top)
	c.Drives[0] = Drive{Path: top, Format: "qcow2", Backing: &Image{
		Path: mid, Format: "qcow2", Backing: &Image{Path: base, Format: "raw"},
	}}
	m := start(t, ctx, c, dir)
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v\nconsole: %q", err, m.ConsoleTail(5))
	}
	if got := m.ConsoleTail(5); got != bootMarker {
		t.Errorf("ConsoleTail = %q, want %q", got, bootMarker)
	}
	// Stated without its chain, the same overlay is all zeros.
	c.Drives[0].Backing = nil
	seabios := filepath.Join(dir, "seabios.log")
	c.ExtraArgs = []string{"-chardev", "file,id=seabios,path=" + seabios, "-device", "isa-debugcon,iobase=0x402,chardev=seabios"}
	m = start(t, ctx, c, dir)
	waitFile(t, m, seabios, "Boot failed: not a bootable disk", 30*time.Second)
}

// TestStart_RefusesExternalDataFile: QEMU would open the data file a
// qcow2 header names even with the chain stated, so Start refuses the
// image before QEMU runs.
func TestStart_RefusesExternalDataFile(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	qemuImgCreate(t, dir, "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), "ext.qcow2", "1M")
	qemuImgCreate(t, dir, "-f", "qcow2", "-u", "-b", "ext.qcow2", "-F", "qcow2", "top.qcow2", "1M")
	c := bootConfig(t, filepath.Join(dir, "ext.qcow2"))
	c.Drives = append([]Drive{{Path: writeBootDisk(t, dir, modePowerOff), Format: "raw"}}, Drive{
		Path: filepath.Join(dir, "top.qcow2"), Format: "qcow2", Backing: &Image{Path: filepath.Join(dir, "ext.qcow2"), Format: "qcow2"},
	})
	_, err := Start(context.Background(), c, dir)
	if !errors.Is(err, ErrExternalData) || !strings.HasPrefix(err.Error(), "qemu: drives[1]: "+filepath.Join(dir, "ext.qcow2")) {
		t.Fatalf("Start = %v, want ErrExternalData for drives[1]'s backing image", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConsoleLogName)); err == nil {
		t.Error("QEMU ran")
	}
}
