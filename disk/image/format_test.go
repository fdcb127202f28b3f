package image

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// at returns size bytes with magic at off.
func at(size int, off int, magic string) []byte {
	b := make([]byte, size)
	copy(b[off:], magic)
	return b
}

func TestDetect(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"qcow2", at(512, 0, "QFI\xfb\x00\x00\x00\x03"), "qcow2"},
		{"vhdx", at(mib, 0, "vhdxfile"), "vhdx"},
		{"vmdk sparse", at(mib, 0, "KDMV"), "vmdk"},
		{"vmdk esx", at(4096, 0, "COWD"), "vmdk"},
		{"vmdk descriptor", []byte("# Disk DescriptorFile\nversion=1\n"), "vmdk"},
		{"vdi", at(mib, 0x40, "\x7f\x10\xda\xbe"), "vdi"},
		{"vhd dynamic", at(mib, 0, "conectix"), "vhd"},
		{"vhd fixed", at(mib+512, mib, "conectix"), "vhd"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, "gzip"},
		{"xz", at(100, 0, "\xfd7zXZ\x00"), "xz"},
		{"zstd", at(100, 0, "\x28\xb5\x2f\xfd"), "zstd"},
		{"bzip2", []byte("BZh91AY&SY"), "bzip2"},
		{"ELF", at(mib, 0, "\x7fELF\x02\x01\x01"), "ELF"},
		{"tar", at(10240, 257, "ustar\x0000"), "tar"},
		{"iso9660", at(2*mib, 0x8001, "CD001"), "iso9660"},
		{"empty", nil, "empty"},
		{"raw zeros", make([]byte, mib), "raw"},
		{"raw with an MBR", at(2*mib, 510, "\x55\xaa"), "raw"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Detect(bytes.NewReader(c.data), int64(len(c.data)))
			if err != nil || got != c.want {
				t.Errorf("Detect = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	for _, size := range []int{1000, 1<<20 + 1, 512 * 100} {
		_, err := Detect(bytes.NewReader(make([]byte, size)), int64(size))
		if err == nil || !strings.HasPrefix(err.Error(), "image: unrecognised data") {
			t.Errorf("Detect(%d zero bytes) error = %v, want unrecognised", size, err)
		}
	}
}

func TestDetect_QEMUProbes(t *testing.T) {
	for _, c := range []struct {
		name string
		head string
		want string
	}{
		{"qed", "QED\x00", "qed"},
		{"luks", "LUKS\xba\xbe", "luks"},
		{"parallels", "WithoutFreeSpace", "parallels"},
		{"parallels ext", "WithouFreSpacExt", "parallels"},
		{"bochs", "Bochs Virtual HD Image", "bochs"},
		{"qcow v1", "QFI\xfb\x00\x00\x00\x01", "qcow"},
		{"qcow2 v2", "QFI\xfb\x00\x00\x00\x02", "qcow2"},
		{"descriptor", "version=1\nRW 8 FLAT \"x\" 0\n", "vmdk"},
		{"descriptor, CRLF", "version=3\r\n", "vmdk"},
		{"descriptor after comments and spaces", "# a\n#b\n   \n \r\nversion=2\n", "vmdk"},
		{"not after an empty line", "\nversion=1\n", "raw"},
		{"not after text", "hello\nversion=1\n", "raw"},
		{"not version 4", "version=4\n", "raw"},
		{"not without a line end", "version=1 ", "raw"},
		{"not an unended comment", "# x", "raw"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := at(1<<20, 0, c.head)
			if got, err := Detect(bytes.NewReader(b), int64(len(b))); err != nil || got != c.want {
				t.Errorf("Detect = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestDescriptorFiles(t *testing.T) {
	desc := "# Disk DescriptorFile\nversion=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n" +
		"parentFileNameHint=\"/var/lib/parent.vmdk\"\n" +
		"RW 2048 FLAT \"/etc/shadow\" 0\r\n  RDONLY 10 SPARSE \"b.vmdk\"\nNOACCESS 10 ZERO\nRW 1 FLAT \"\" 0\n" +
		"ddb.comment = \"RW 1 FLAT \\\"c\\\"\"\n"
	want := []string{"/var/lib/parent.vmdk", "/etc/shadow", "b.vmdk"}
	if got := descriptorFiles([]byte(desc), 4); !slices.Equal(got, want) {
		t.Errorf("descriptorFiles = %q, want %q", got, want)
	}
	if got := descriptorFiles([]byte(desc), 1); len(got) != 1 {
		t.Errorf("descriptorFiles(max 1) = %q", got)
	}
}
