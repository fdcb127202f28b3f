package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	lima "github.com/lima-vm/go-qcow2reader/image"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	raw := writeFile(t, filepath.Join(dir, "disk.raw"), make([]byte, 2<<20))
	info, err := Check(raw)
	if err != nil || *info != (Info{Format: Raw, VirtualSize: 2 << 20}) {
		t.Errorf("Check(raw) = %+v, %v", info, err)
	}
	qcow := writeFile(t, filepath.Join(dir, "disk.qcow2"), testQcow2(16, 5<<30, 10, ""))
	info, err = Check(qcow)
	if err != nil || *info != (Info{Format: QCOW2, VirtualSize: 5 << 30}) {
		t.Errorf("Check(qcow2) = %+v, %v", info, err)
	}
	if _, err := Check(qcow, WithMaxVirtualSize(4<<30)); !errors.Is(err, ErrTooLarge) ||
		err.Error() != "image: "+qcow+" has a virtual size of 5 GiB, over the limit of 4 GiB: a disk that large from an image kiln did not make is more likely crafted than real" {
		t.Errorf("Check(5 GiB, limit 4 GiB) = %v", err)
	}
	if _, err := Check(qcow, WithMaxVirtualSize(0)); err != nil {
		t.Errorf("a limit of 0 keeps the default: %v", err)
	}

	dataFile := testQcow2(16, 1<<20, 1, "")
	binary.BigEndian.PutUint64(dataFile[72:], incompatDataFile)
	withExtension(dataFile, extDataFile, "/dev/sda")
	luks := testQcow2(16, 1<<20, 1, "")
	binary.BigEndian.PutUint32(luks[32:], 2)
	long := testQcow2(16, 1<<20, 1, strings.Repeat("../", 300)+"etc/shadow\x1b[2J")
	for _, c := range []struct {
		name    string
		data    []byte
		because error
		want    string
	}{
		{"huge", testQcow2(16, 1<<41, 4096, ""), ErrTooLarge, "virtual size of 2 TiB, over the limit of 1 TiB"},
		{"ridiculous", testQcow2(16, 1<<63, 4096, ""), ErrInvalid, "qcow2 header: virtual size 9223372036854775808 out of range"},
		{"data file", dataFile, ErrDataFile, `keeps its data in an external data file "/dev/sda"`},
		{"luks", luks, ErrEncrypted, "is encrypted (LUKS)"},
		{"backing name quoted and cut", long, ErrBackingFile, `has a backing file "../../`},
		{"version 4", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[7] = 4; return b }(), ErrInvalid, "unsupported version 4"},
		{"qcow version 1", at(1<<20, 0, "QFI\xfb\x00\x00\x00\x01"), ErrFormat, "is a qcow image; kiln reads qcow2 and raw images: convert it first"},
		{"unknown feature", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[79] = 1 << 5; return b }(), ErrInvalid, "unknown incompatible features 0x20"},
		{"refcount order", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[99] = 7; return b }(), ErrInvalid, "refcount order 7"},
		{"header length", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[103] = 20; return b }(), ErrInvalid, "header length 20"},
		{"snapshots", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[61] = 2; return b }(), ErrInvalid, "131072 snapshots"},
		{"refcount table", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[50] = 1; return b }(), ErrInvalid, "refcount table offset"},
		{"crypt method", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[35] = 3; return b }(), ErrInvalid, "unknown crypt method 3"},
		{"extension past the header", withExtension(testQcow2(16, 1<<20, 1, "x"), 0x12345678, strings.Repeat("x", 600)), ErrInvalid, "header extension runs past"},
		{"luks image", at(1<<20, 0, "LUKS\xba\xbe\x00\x01"), ErrEncrypted, "is a LUKS-encrypted image"},
		{"qed", at(1<<20, 0, "QED\x00"), ErrFormat, "is a qed image"},
		{"xz", at(1000, 0, "\xfd7zXZ\x00"), ErrFormat, "decompress it first (xz -dk "},
		{"short", make([]byte, 1000), ErrFormat, "unrecognised data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, "x.img"), c.data)
			info, err := Check(path)
			if !errors.Is(err, c.because) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "image: "+path) {
				t.Fatalf("Check = %+v, %v; want an error wrapping %v containing %q", info, err, c.because, c.want)
			}
			if strings.ContainsAny(err.Error(), "\x1b\n") || len(err.Error()) > 1000 {
				t.Errorf("error carries raw header text: %q", err)
			}
			if _, oerr := Open(path); oerr == nil || oerr.Error() != err.Error() {
				t.Errorf("Open error = %v, Check's %v", oerr, err)
			}
		})
	}

	// Not regular files: refused without opening (a FIFO would block).
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(fifo); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("Check(fifo) = %v", err)
	}
	if _, err := Check(dir); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Check(dir) = %v", err)
	}
	if _, err := Check(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrFormat) {
		t.Errorf("Check(missing) = %v", err)
	}
}

// The header go-qcow2reader reads names no backing file where kiln's
// chain ends, whatever the file says.
func TestQcow2FileMasksBacking(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "x.qcow2"), testQcow2(16, 1<<20, 1, "/etc/shadow"))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, noBacking := range []bool{false, true} {
		q := &qcow2File{f: f, noBacking: noBacking}
		for _, r := range [][2]int64{{0, 112}, {8, 8}, {12, 2}, {0, 9}, {15, 10}, {16, 8}} {
			p := make([]byte, r[1])
			if _, err := q.ReadAt(p, r[0]); err != nil {
				t.Fatal(err)
			}
			var h [112]byte
			f.ReadAt(h[:], 0)
			if noBacking {
				clear(h[8:16])
			}
			if !bytes.Equal(p, h[r[0]:r[0]+r[1]]) {
				t.Errorf("noBacking=%v: ReadAt(%d, %d) = % x", noBacking, r[0], r[1], p)
			}
		}
	}
}

// The opener go-qcow2reader calls with the backing file it opened accepts
// only the file Check verified, in its format.
func TestChainOpener(t *testing.T) {
	dir := t.TempDir()
	base := writeFile(t, filepath.Join(dir, "base.raw"), make([]byte, 1<<20))
	other := writeFile(t, filepath.Join(dir, "other.raw"), make([]byte, 1<<20))
	st, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	chain := []link{{path: base, format: Raw, file: st}}
	for _, c := range []struct {
		name   string
		path   string
		format lima.Type
		chain  []link
		ok     bool
	}{
		{"verified", base, "raw", chain, true},
		{"another file", other, "raw", chain, false},
		{"another format", base, "qcow2", chain, false},
		{"past the chain", base, "raw", nil, false},
	} {
		f, err := os.Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := chainOpener(c.chain)(f, c.format)
		if (err == nil) != c.ok || img == nil {
			t.Errorf("%s: opener = %v, %v", c.name, img, err)
		}
		if img != nil {
			img.Close()
		}
		if err := f.Close(); err == nil {
			t.Errorf("%s: the opened file was not closed with the image", c.name)
		}
	}
}
