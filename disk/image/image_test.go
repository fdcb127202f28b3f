package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// diskData is deterministic disk content with text, noise, zeros and
// repeated records, size bytes long.
func diskData(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, 0, size)
	for len(b) < size {
		switch rng.IntN(4) {
		case 0:
			for i := rng.IntN(4000); i > 0; i-- {
				b = append(b, "kiln golden image /etc/machine-id\n"[i%34])
			}
		case 1:
			for i := rng.IntN(3000); i > 0; i-- {
				b = append(b, byte(rng.Uint32()))
			}
		case 2:
			b = append(b, make([]byte, rng.IntN(200_000))...)
		case 3:
			for i := rng.IntN(500); i > 0; i-- {
				b = binary.LittleEndian.AppendUint64(b, uint64(i)<<20|uint64(rng.IntN(3)))
			}
		}
	}
	return b[:size]
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkReads compares img with want: whole, then many unaligned pieces,
// also from parallel goroutines.
func checkReads(t *testing.T, img *Image, want []byte) {
	t.Helper()
	if img.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", img.Size(), len(want))
	}
	got := make([]byte, len(want))
	if n, err := img.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(all) = %d, %v", n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs at byte %d", firstDiff(got, want))
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 300 {
				off := rng.Int64N(int64(len(want)))
				p := make([]byte, 1+rng.IntN(200_000))
				n, err := img.ReadAt(p, off)
				end := min(off+int64(len(p)), int64(len(want)))
				if n != int(end-off) || !bytes.Equal(p[:n], want[off:end]) {
					errs <- errors.New("random read differs")
					return
				}
				if (end < off+int64(len(p))) != (err == io.EOF) || (err != nil && err != io.EOF) {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestOpenRaw(t *testing.T) {
	want := diskData(3<<20, 1)
	path := writeFile(t, filepath.Join(t.TempDir(), "disk.raw"), want)
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != Raw {
		t.Errorf("Format = %q", img.Format())
	}
	checkReads(t, img, want)
	if n, err := img.ReadAt(make([]byte, 10), img.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(end) = %d, %v", n, err)
	}
	if _, err := img.ReadAt(make([]byte, 10), -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
}

func TestOpenRefusesOtherFormats(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		file string
		data []byte
		want string
	}{
		{"y.vmdk", at(1<<20, 0, "KDMV"), "is a vmdk image; kiln reads qcow2 and raw images"},
		{"y.vdi", at(1<<20, 0x40, "\x7f\x10\xda\xbe"), "is a vdi image;"},
		{"y.iso", at(1<<20, 0x8001, "CD001"), "is an iso9660 image;"},
		{"y.raw.gz", []byte{0x1f, 0x8b, 8, 0, 0}, "is a gzip file;"},
		{"empty.raw", nil, "is empty;"},
		{"short.raw", make([]byte, 1000), "unrecognised data"},
	} {
		path := writeFile(t, filepath.Join(dir, c.file), c.data)
		_, err := Open(path)
		if err == nil || !strings.HasPrefix(err.Error(), "image: "+path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s) error = %v, want %q", c.file, err, c.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) error = %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("Open(dir) error = %v", err)
	}
	vmdk := filepath.Join(dir, "y.vmdk")
	want := "image: " + vmdk + " is a vmdk image; kiln reads qcow2 and raw images: convert it first with qemu-img convert -O qcow2 " + vmdk + " " + filepath.Join(dir, "y.qcow2")
	if _, err := Open(vmdk); err == nil || err.Error() != want || !errors.Is(err, ErrFormat) {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// testQcow2 builds a version 3 image (see doc.go for offsets) of three
// clusters, with an empty L1 table in the second, and an optional backing
// file name stored at 0x200.
func testQcow2(clusterBits uint32, size uint64, l1Size uint32, backing string) []byte {
	b := make([]byte, 3<<clusterBits)
	copy(b, "QFI\xfb")
	binary.BigEndian.PutUint32(b[4:], 3)
	if backing != "" {
		binary.BigEndian.PutUint64(b[8:], 0x200)
		binary.BigEndian.PutUint32(b[16:], uint32(len(backing)))
		copy(b[0x200:], backing)
	}
	binary.BigEndian.PutUint32(b[20:], clusterBits)
	binary.BigEndian.PutUint64(b[24:], size)
	binary.BigEndian.PutUint32(b[36:], l1Size)
	binary.BigEndian.PutUint64(b[40:], 1<<clusterBits) // L1 in cluster 1
	binary.BigEndian.PutUint32(b[100:], 104)           // header length
	return b
}

// withExtension appends a header extension to the extensions of b, a
// testQcow2 image, which start at 104 and may run to 0x200.
func withExtension(b []byte, typ uint32, data string) []byte {
	off := 104
	for binary.BigEndian.Uint32(b[off:]) != 0 {
		off += 8 + (int(binary.BigEndian.Uint32(b[off+4:]))+7)&^7
	}
	binary.BigEndian.PutUint32(b[off:], typ)
	binary.BigEndian.PutUint32(b[off+4:], uint32(len(data)))
	copy(b[off+8:], data)
	return b
}

// withBackingFormat records the backing file's format, as qemu-img
// create -F does.
func withBackingFormat(b []byte, format string) []byte {
	return withExtension(b, extBackingFormat, format)
}

func TestOpenCorruptQcow2(t *testing.T) {
	dir := t.TempDir()
	encrypted := testQcow2(16, 1<<20, 1, "")
	binary.BigEndian.PutUint32(encrypted[32:], 1)
	external := testQcow2(16, 1<<20, 1, "")
	binary.BigEndian.PutUint64(external[72:], 1<<2)
	self := filepath.Join(dir, "self.qcow2")
	for _, c := range []struct {
		name    string
		data    []byte
		opts    []Option
		want    string
		because error
	}{
		{"cluster bits", func() []byte { b := testQcow2(16, 1<<20, 1, ""); b[23] = 40; return b }(), nil, "cluster bits 40", ErrInvalid},
		{"L1 beyond file", testQcow2(16, 1<<40, 1<<20, ""), nil, "L1 table", ErrInvalid},
		{"L1 too large", testQcow2(16, 1<<40, 1<<30, ""), nil, "L1 table", ErrInvalid},
		{"L1 too small", testQcow2(9, 1<<30, 1, ""), nil, "L1 table of 1 entries too small", ErrInvalid},
		{"encrypted", encrypted, nil, "is encrypted (AES)", ErrEncrypted},
		{"external data", external, nil, "external data file", ErrDataFile},
		{"any backing", testQcow2(16, 1<<20, 1, "/etc/shadow"), nil, `has a backing file "/etc/shadow"`, ErrBackingFile},
		{"backing without format", testQcow2(16, 1<<20, 1, "self.qcow2"), []Option{WithBacking(self)}, "records no format", ErrBackingFile},
		{"self backing", withBackingFormat(testQcow2(16, 1<<20, 1, "self.qcow2"), "qcow2"), []Option{WithBacking(self)}, "that kiln did not put there", ErrBackingFile},
		{"missing backing", withBackingFormat(testQcow2(16, 1<<20, 1, "nowhere.qcow2"), "qcow2"), []Option{WithBacking(filepath.Join(dir, "nowhere.qcow2"))}, "no such file", os.ErrNotExist},
		{"vmdk backing", withBackingFormat(testQcow2(16, 1<<20, 1, "y.vmdk"), "qcow2"), []Option{WithBacking(filepath.Join(dir, "y.vmdk"))}, "should be qcow2 but is a vmdk image", ErrFormat},
		{"vmdk backing format", withBackingFormat(testQcow2(16, 1<<20, 1, "y.vmdk"), "vmdk"), []Option{WithBacking(filepath.Join(dir, "y.vmdk"))}, "is a vmdk image", ErrFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			writeFile(t, self, c.data)
			writeFile(t, filepath.Join(dir, "y.vmdk"), at(1<<20, 0, "KDMV"))
			_, err := Open(self, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "image: ") || !errors.Is(err, c.because) {
				t.Errorf("error = %v, want one containing %q and wrapping %v", err, c.want, c.because)
			}
		})
	}
}

// A loop through the backing files is as long as the chain kiln allowed.
func TestOpenBackingLoopOfTwo(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.qcow2"), filepath.Join(dir, "b.qcow2")
	writeFile(t, a, withBackingFormat(testQcow2(16, 1<<20, 1, "b.qcow2"), "qcow2"))
	writeFile(t, b, withBackingFormat(testQcow2(16, 1<<20, 1, "a.qcow2"), "qcow2"))
	if _, err := Open(a, WithBacking(b, a)); err == nil || !strings.Contains(err.Error(), "did not put there") {
		t.Errorf("error = %v, want a refused backing file", err)
	}
}

// A hand-made qcow2 with an empty L1 table reads as zeros, or as its
// backing file.
func TestOpenMinimalQcow2(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, filepath.Join(dir, "empty.qcow2"), testQcow2(16, 3<<20, 1, ""))
	img, err := Open(empty)
	if err != nil {
		t.Fatal(err)
	}
	checkReads(t, img, make([]byte, 3<<20))
	img.Close()

	base := diskData(2<<20, 3)
	writeFile(t, filepath.Join(dir, "base.raw"), base)
	over := writeFile(t, filepath.Join(dir, "over.qcow2"), withBackingFormat(testQcow2(16, 2<<20, 1, "base.raw"), "raw"))
	if img, err = Open(over, WithBacking(filepath.Join(dir, "base.raw"))); err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != QCOW2 {
		t.Errorf("Format = %q", img.Format())
	}
	checkReads(t, img, base)
}
