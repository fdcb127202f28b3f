package image

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// hostSecret is the content of the "host file" the hostile images below
// try to read.
var hostSecret = bytes.Repeat([]byte("HOST-SECRET-0123"), 1<<16) // 1 MiB

// TestOpenRefusesHostileImages builds, with qemu-img, images whose headers
// name files on the host, and one too large to be real: Open must refuse
// each before following anything, naming the problem.
func TestOpenRefusesHostileImages(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	secret := writeFile(t, filepath.Join(dir, "secret.raw"), hostSecret)
	qemuImg(t, dir, "convert", "-O", "qcow2", "secret.raw", "secret.qcow2")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", filepath.Join(dir, "secret.qcow2"), "-F", "qcow2", "on-qcow2.qcow2", "1M")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", "on-raw.qcow2", "1M")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", "shadow.qcow2", "1G")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-u", "-b", "secret.raw", "-F", "raw", "relative.qcow2", "1M")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "huge.qcow2", "2T")
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), "external.qcow2", "1M")
	if err := os.WriteFile(filepath.Join(dir, "data.raw"), hostSecret, 0o644); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, dir, "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=kiln",
		"-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "encrypted.qcow2", "1M")
	// A flat vmdk as qemu-img writes it (a text descriptor and its extent),
	// then pointed at the host file.
	qemuImg(t, dir, "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "1M")
	desc, err := os.ReadFile(filepath.Join(dir, "flat.vmdk"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "desc.vmdk"), bytes.Replace(desc, []byte(`"flat-flat.vmdk"`), []byte(`"`+secret+`"`), 1))
	// QEMU probes a text file as a vmdk descriptor when comment lines and
	// blank lines of spaces come before "version=1".
	comment := make([]byte, 1<<20)
	copy(comment, "# not a disk\n  \nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/shadow\" 0\n")
	writeFile(t, filepath.Join(dir, "comment.img"), comment)

	for _, c := range []struct {
		file    string
		because error
		want    []string
	}{
		{"on-qcow2.qcow2", ErrBackingFile, []string{"has a backing file", filepath.Join(dir, "secret.qcow2"), "kiln does not follow backing files of images it did not make", "qemu-img convert -O qcow2 "}},
		{"on-raw.qcow2", ErrBackingFile, []string{"has a backing file", secret}},
		{"shadow.qcow2", ErrBackingFile, []string{`has a backing file "/etc/shadow"`, "flatten it first with qemu-img convert -O qcow2 " + filepath.Join(dir, "shadow.qcow2")}},
		{"relative.qcow2", ErrBackingFile, []string{`has a backing file "secret.raw"`}},
		{"huge.qcow2", ErrTooLarge, []string{"virtual size of 2 TiB", "over the limit of 1 TiB"}},
		{"external.qcow2", ErrDataFile, []string{"external data file", filepath.Join(dir, "data.raw")}},
		{"encrypted.qcow2", ErrEncrypted, []string{"is encrypted (LUKS)"}},
		{"desc.vmdk", ErrFormat, []string{"is a vmdk descriptor", secret, "kiln reads qcow2 and raw images"}},
		{"comment.img", ErrFormat, []string{"is a vmdk descriptor", "/etc/shadow"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			img, err := Open(path)
			if err == nil {
				defer img.Close()
				got := make([]byte, 64)
				img.ReadAt(got, 0)
				t.Fatalf("Open succeeded: %s image of %d bytes, reading %q", img.Format(), img.Size(), got[:16])
			}
			if !strings.HasPrefix(err.Error(), "image: "+path) || !errors.Is(err, c.because) {
				t.Errorf("error %q does not start with image: %s or does not wrap %v", err, path, c.because)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if info, cerr := Check(path); cerr == nil || cerr.Error() != err.Error() || !errors.Is(cerr, c.because) {
				t.Errorf("Check = %+v, %v; want Open's error %v", info, cerr, err)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
	// A caller's lower limit applies to raw images too.
	if _, err := Check(secret, WithMaxVirtualSize(512<<10)); !errors.Is(err, ErrTooLarge) ||
		!strings.Contains(err.Error(), "virtual size of 1 MiB, over the limit of 512 KiB") {
		t.Errorf("Check(1 MiB raw, 512 KiB limit) = %v", err)
	}
}

// TestOpenKilnOverlay: the overlays kiln makes (kiln test, the VM bake)
// name their base by its absolute path and format; opened with that path
// allowed they read through to the base, and only then.
func TestOpenKilnOverlay(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	want := diskData(2<<20, 8)
	for _, format := range []string{"raw", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			base := filepath.Join(dir, "base."+format)
			writeFile(t, filepath.Join(dir, "base.raw"), want)
			if format == "qcow2" {
				qemuImg(t, dir, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "base.raw", base)
			}
			overlay := filepath.Join(dir, format+"-overlay.qcow2")
			qemuImg(t, dir, "create", "-q", "-f", "qcow2", "-b", base, "-F", format, overlay)
			img, err := Open(overlay, WithBacking(base))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			checkReads(t, img, want)
			if _, err := Open(overlay); !errors.Is(err, ErrBackingFile) {
				t.Errorf("Open without WithBacking = %v", err)
			}
		})
	}
}
