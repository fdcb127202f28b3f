package image

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheck feeds arbitrary bytes to Check and Open, alone and as a chain
// kiln allowed (the image as its own backing file): they never panic, they
// agree, and an image they accept reads without panicking.
func FuzzCheck(f *testing.F) {
	f.Add(testQcow2(16, 1<<20, 1, ""))
	f.Add(testQcow2(9, 1<<20, 64, ""))
	f.Add(withBackingFormat(testQcow2(16, 1<<20, 1, "b.img"), "qcow2"))
	f.Add(withBackingFormat(testQcow2(16, 1<<20, 1, "/etc/shadow"), "raw"))
	dataFile := testQcow2(16, 1<<20, 1, "")
	binary.BigEndian.PutUint64(dataFile[72:], incompatDataFile)
	f.Add(withExtension(dataFile, extDataFile, "/etc/shadow"))
	v2 := testQcow2(12, 1<<30, 64, "b.img")
	v2[7] = 2
	f.Add(v2)
	f.Add([]byte("# Disk DescriptorFile\nversion=1\nRW 2048 FLAT \"/etc/shadow\" 0\n"))
	f.Add(at(4096, 0, "KDMV"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.img")
		b := filepath.Join(dir, "b.img")
		for _, p := range []string{a, b} {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, opts := range [][]Option{nil, {WithBacking(b)}} {
			info, err := Check(a, opts...)
			img, oerr := Open(a, opts...)
			if err != nil && (oerr == nil || oerr.Error() != err.Error()) {
				t.Fatalf("Check = %v, but Open = %v", err, oerr)
			}
			if err != nil {
				if !errors.Is(err, ErrBackingFile) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrInvalid) &&
					!errors.Is(err, ErrDataFile) && !errors.Is(err, ErrEncrypted) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("Check error wraps no reason: %v", err)
				}
				continue
			}
			if info.VirtualSize > MaxVirtualSize || (info.Format != Raw && info.Format != QCOW2) {
				t.Fatalf("Check accepted %+v", info)
			}
			if img == nil {
				continue
			}
			p := make([]byte, 4096)
			for _, off := range []int64{0, info.VirtualSize / 2, info.VirtualSize - 1} {
				if _, err := img.ReadAt(p, off); err != nil && err != io.EOF {
					break
				}
			}
			img.Close()
		}
	})
}
