package image

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func qemuImg(t *testing.T, dir string, args ...string) {
	t.Helper()
	for try := 1; ; try++ {
		cmd := exec.Command(testutil.NeedTool(t, "qemu-img"), args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		// LUKS encryption times its key derivation on the thread's CPU
		// clock first; on a machine busy with guests that clock can stand
		// still and qemu-img gives up. Its own flake: try again.
		if try < 5 && strings.Contains(string(out), "Unable to get accurate CPU usage") {
			continue
		}
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestQcow2Variants converts one raw disk with qemu-img into the qcow2
// flavours kiln meets and reads each back byte for byte. The size is not a
// multiple of the cluster size, so the last cluster is partial.
func TestQcow2Variants(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	want := diskData(6<<20+3*512, 11)
	writeFile(t, filepath.Join(dir, "disk.raw"), want)
	for _, v := range []struct{ name, opts string }{
		{"plain", ""},
		{"zlib", "-c"},
		{"zstd", "-c -o compression_type=zstd"},
		{"zstd-4k-clusters", "-c -o compression_type=zstd,cluster_size=4096"},
		{"zstd-2m-clusters", "-c -o compression_type=zstd,cluster_size=2M"},
		{"zstd-512-clusters", "-c -o compression_type=zstd,cluster_size=512"},
		{"v2-zlib", "-c -o compat=0.10"},
	} {
		t.Run(v.name, func(t *testing.T) {
			out := v.name + ".qcow2"
			qemuImg(t, dir, append(append([]string{"convert", "-O", "qcow2"}, strings.Fields(v.opts)...), "disk.raw", out)...)
			img, err := Open(filepath.Join(dir, out))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Format() != QCOW2 {
				t.Errorf("Format = %q", img.Format())
			}
			checkReads(t, img, want)
		})
	}
}

// TestQcow2BackingChains builds overlays the way kiln does (convert -B
// stores only the clusters that differ) over qcow2 and raw bases, with
// relative backing names, and reads the overlay's view.
func TestQcow2BackingChains(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	base := diskData(4<<20, 21)
	writeFile(t, filepath.Join(dir, "base.raw"), base)
	qemuImg(t, dir, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "base.raw", "base.qcow2")

	changed := bytes.Clone(base)
	copy(changed[1<<20:], bytes.Repeat([]byte("overlay!"), 10_000))
	copy(changed[3<<20+100:], diskData(70_000, 5))
	writeFile(t, filepath.Join(dir, "changed.raw"), changed)
	qemuImg(t, dir, "convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", "changed.raw", "mid.qcow2")
	qemuImg(t, dir, "create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2")
	qemuImg(t, dir, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "onraw.qcow2")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, filepath.Join(dir, "sub"), "create", "-f", "qcow2", "-b", "../mid.qcow2", "-F", "qcow2", "up.qcow2")

	abs := func(name string) string { return filepath.Join(dir, name) }
	for _, c := range []struct {
		file    string
		backing []string
		want    []byte
	}{
		{"mid.qcow2", []string{abs("base.qcow2")}, changed},
		{"top.qcow2", []string{abs("mid.qcow2"), abs("base.qcow2")}, changed},
		{"sub/up.qcow2", []string{abs("mid.qcow2"), abs("base.qcow2")}, changed},
		{"onraw.qcow2", []string{abs("base.raw")}, base},
	} {
		t.Run(c.file, func(t *testing.T) {
			img, err := Open(filepath.Join(dir, c.file), WithBacking(c.backing...))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			checkReads(t, img, c.want)
			info, err := Check(filepath.Join(dir, c.file), WithBacking(c.backing...))
			if err != nil || info.Format != QCOW2 || info.VirtualSize != int64(len(c.want)) {
				t.Errorf("Check = %+v, %v", info, err)
			}
		})
	}

	// Backing files are followed only as far as kiln named them, and only
	// where it named them.
	top := abs("top.qcow2")
	for _, c := range []struct {
		name string
		opts []Option
		want string
	}{
		{"none named", nil, `has a backing file "mid.qcow2": kiln does not follow backing files of images it did not make`},
		{"chain too short", []Option{WithBacking(abs("mid.qcow2"))}, abs("mid.qcow2") + `, in the backing chain kiln made, has a backing file "base.qcow2" that kiln did not put there`},
		{"another file", []Option{WithBacking(abs("base.qcow2"))}, `has a backing file "mid.qcow2", not the one kiln made it with (` + abs("base.qcow2") + ")"},
		{"right file, wrong depth", []Option{WithBacking(abs("mid.qcow2"), abs("other.qcow2"))}, "not the one kiln made it with"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(top, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBackingFile) {
				t.Errorf("Open error = %v\nwant one containing %s", err, c.want)
			}
			if _, cerr := Check(top, c.opts...); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Check error = %v, Open's %v", cerr, err)
			}
		})
	}
	// A relative name works as the working directory sees it.
	t.Chdir(dir)
	img, err := Open("top.qcow2", WithBacking("mid.qcow2", "./sub/../base.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	checkReads(t, img, changed)
	img.Close()

	// A missing base is named.
	if err := os.Rename(filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "gone.qcow2")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(top, WithBacking(abs("mid.qcow2"), abs("base.qcow2"))); err == nil || !strings.Contains(err.Error(), "base.qcow2") {
		t.Errorf("error = %v, want one naming base.qcow2", err)
	}
}

// TestOtherFormatsFromQemuImg checks Detect and the Open error against
// images qemu-img writes.
func TestOtherFormatsFromQemuImg(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "disk.raw"), diskData(2<<20, 4))
	for _, c := range []struct{ format, opts, want string }{
		{"vmdk", "", "vmdk"},
		{"vmdk", "subformat=streamOptimized", "vmdk"},
		{"vdi", "", "vdi"},
		{"vhdx", "", "vhdx"},
		{"vpc", "", "vhd"},
		{"vpc", "subformat=fixed", "vhd"},
	} {
		name := c.format + strings.ReplaceAll(c.opts, "=", "-") + ".img"
		args := []string{"convert", "-O", c.format}
		if c.opts != "" {
			args = append(args, "-o", c.opts)
		}
		qemuImg(t, dir, append(args, "disk.raw", name)...)
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		got, err := Detect(f, st.Size())
		f.Close()
		if err != nil || got != c.want {
			t.Errorf("%s: Detect = %q, %v; want %q", name, got, err, c.want)
		}
		_, err = Open(path)
		want := "image: " + path + " is a " + c.want + " image; kiln reads qcow2 and raw images: convert it first with qemu-img convert -O qcow2 " +
			path + " " + strings.TrimSuffix(path, ".img") + ".qcow2"
		if err == nil || err.Error() != want || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Open error = %v, want %q", name, err, want)
		}
	}
}
