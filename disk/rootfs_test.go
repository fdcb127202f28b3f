package disk

import (
	"slices"
	"testing"
)

func TestMkfsArgs(t *testing.T) {
	const uuid = "0f5a1c2e-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
	for _, c := range []struct {
		name string
		size int64
		want []string
	}{
		{"smallest", MinSize, []string{"-q", "-F", "-t", "ext4", "-L", "kiln-root", "-U", uuid,
			"-E", "offset=70254592,hash_seed=" + uuid + ",root_owner=0:0,nodiscard",
			"-d", "/work/tree", "/work/disk.raw", "262124k"}},
		{"4 GiB", 4 << 30, []string{"-q", "-F", "-t", "ext4", "-L", "kiln-root", "-U", uuid,
			"-E", "offset=70254592,hash_seed=" + uuid + ",root_owner=0:0,nodiscard",
			"-d", "/work/tree", "/work/disk.raw", "4125676k"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := newLayout(c.size)
			if err != nil {
				t.Fatal(err)
			}
			if got := mkfsArgs("/work/disk.raw", l, "/work/tree", RootLabel, uuid); !slices.Equal(got, c.want) {
				t.Errorf("mkfsArgs:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}
