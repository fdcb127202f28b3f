package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Format is the container of an image kiln can read.
type Format string

// The formats Open accepts.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// minRawSize is the smallest file Detect calls a raw disk: anything
// smaller is more likely a stray file than a disk.
const minRawSize = 1 << 20

// signature is a byte string at a fixed offset that names a format.
type signature struct {
	off   int64
	magic string
	name  string
}

// Order matters only where one magic is a prefix of another's data; see
// the table in doc.go.
var signatures = []signature{
	{0, "QFI\xfb", "qcow2"}, // or "qcow" (version 1): see Detect
	{0, "QED\x00", "qed"},
	{0, "vhdxfile", "vhdx"},
	{0, "KDMV", "vmdk"},
	{0, "COWD", "vmdk"},
	{0, "# Disk DescriptorFile", "vmdk"},
	{0x40, "\x7f\x10\xda\xbe", "vdi"},
	{0, "conectix", "vhd"},
	{0, "LUKS\xba\xbe", "luks"},
	{0, "WithoutFreeSpace", "parallels"},
	{0, "WithouFreSpacExt", "parallels"},
	{0, "Bochs Virtual HD Image", "bochs"},
	{0, "\x1f\x8b", "gzip"},
	{0, "\xfd7zXZ\x00", "xz"},
	{0, "\x28\xb5\x2f\xfd", "zstd"},
	{0, "BZh", "bzip2"},
	{0, "\x7fELF", "ELF"},
	{257, "ustar", "tar"},
	{0x8001, "CD001", "iso9660"},
}

// Detect names what the size bytes of r hold, by magic numbers: "qcow2",
// "raw" (no known magic, but a plausible disk: a multiple of 512 bytes and
// at least 1 MiB), "empty", or, so errors can name them, "vmdk", "vdi",
// "vhdx", "vhd", "qed", "qcow" (version 1), "luks", "parallels", "bochs",
// "iso9660", "gzip", "xz", "zstd", "bzip2", "tar", "ELF". A qcow2 with a
// backing file is still "qcow2".
//
// Every format QEMU's own probing would pick instead of raw, and that can
// name other files, is recognised, so that nothing kiln calls raw is
// something else to QEMU: vmdk descriptors are found by QEMU's rule (see
// doc.go), not only by their usual first line.
func Detect(r io.ReaderAt, size int64) (string, error) {
	if size < 0 {
		return "", fmt.Errorf("image: negative size %d", size)
	}
	if size == 0 {
		return "empty", nil
	}
	head := make([]byte, min(size, 0x8001+5))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("image: reading header: %w", err)
	}
	for _, s := range signatures {
		if s.off+int64(len(s.magic)) <= int64(len(head)) &&
			string(head[s.off:s.off+int64(len(s.magic))]) == s.magic {
			if s.name == "qcow2" && len(head) >= 8 && be32(head, 4) == 1 {
				return "qcow", nil
			}
			return s.name, nil
		}
	}
	if isVMDKDescriptor(head[:min(len(head), probeSize)]) {
		return "vmdk", nil
	}
	// A fixed VHD is a raw disk with a 512-byte footer at the end.
	if size >= 512 {
		foot := make([]byte, 8)
		if _, err := r.ReadAt(foot, size-512); err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("image: reading footer: %w", err)
		}
		if bytes.Equal(foot, []byte("conectix")) {
			return "vhd", nil
		}
	}
	if size%512 != 0 || size < minRawSize {
		return "", fmt.Errorf("image: unrecognised data: %d bytes, no known signature, and not a raw disk (a multiple of 512 bytes, at least 1 MiB)", size)
	}
	return string(Raw), nil
}

// describe phrases a detected format for an error message.
func describe(name string) string {
	kind := "image"
	switch name {
	case "empty":
		return "empty"
	case "gzip", "xz", "zstd", "bzip2", "tar", "ELF":
		kind = "file"
	}
	article := "a"
	if name == "ELF" || name == "iso9660" {
		article = "an"
	}
	return fmt.Sprintf("%s %s %s", article, name, kind)
}

// probeSize is how much of a file QEMU's format probing looks at
// (BLOCK_PROBE_BUF_SIZE).
const probeSize = 2048

// isVMDKDescriptor applies QEMU's test for a vmdk text descriptor to the
// start of a file: after any comment lines ("#...") and lines of only
// spaces, the first line is "version=1", "version=2" or "version=3",
// ended by LF or CRLF. (An empty line, or any other text, ends the test.)
func isVMDKDescriptor(b []byte) bool {
	for len(b) > 0 {
		switch b[0] {
		case '#':
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return false
			}
			b = b[i+1:]
		case ' ':
			b = bytes.TrimLeft(b, " ")
			b = bytes.TrimPrefix(b, []byte("\r"))
			if len(b) == 0 || b[0] != '\n' {
				return false
			}
			b = b[1:]
		default:
			for _, v := range []string{"version=1", "version=2", "version=3"} {
				if rest, ok := bytes.CutPrefix(b, []byte(v)); ok {
					return bytes.HasPrefix(rest, []byte("\n")) || bytes.HasPrefix(rest, []byte("\r\n"))
				}
			}
			return false
		}
	}
	return false
}

// descriptorFiles returns the file names a vmdk text descriptor refers to:
// its extents ("RW 2048 FLAT "name" 0") and its parent
// (parentFileNameHint="name"), at most max of them.
func descriptorFiles(desc []byte, max int) []string {
	var names []string
	for _, line := range bytes.Split(desc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		isExtent := false
		for _, access := range []string{"RW ", "RDONLY ", "NOACCESS "} {
			isExtent = isExtent || bytes.HasPrefix(line, []byte(access))
		}
		if !isExtent && !bytes.HasPrefix(line, []byte("parentFileNameHint")) {
			continue
		}
		_, rest, ok := bytes.Cut(line, []byte(`"`))
		if !ok {
			continue
		}
		if name, _, ok := bytes.Cut(rest, []byte(`"`)); ok && len(name) > 0 {
			names = append(names, string(name))
			if len(names) == max {
				break
			}
		}
	}
	return names
}
