package disk

import (
	"strings"
	"testing"
)

func TestNewLayout(t *testing.T) {
	for _, c := range []struct {
		name             string
		size             int64
		rootOff, rootLen int64
		err              string
	}{
		// Root from 67 MiB to the last 4 KiB boundary before the backup
		// GPT (33 sectors) and one spare sector.
		{"smallest", MinSize, 67 << 20, 338669568 - 67<<20, ""},
		{"odd sectors", MinSize + 7*512, 67 << 20, 338673664 - 67<<20, ""},
		{"4 GiB", 4 << 30, 67 << 20, 4294946816 - 67<<20, ""},
		{"too small", MinSize - 512, 0, 0, "disk: 338689536 bytes is too small; the smallest disk is 323 MiB"},
		{"zero", 0, 0, 0, "disk: 0 bytes is too small"},
		{"not whole sectors", MinSize + 100, 0, 0, "disk: size 338690148 is not a multiple of 512"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := newLayout(c.size)
			if c.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.size != c.size || l.rootOffset != c.rootOff || l.rootSize != c.rootLen {
				t.Errorf("layout %+v, want root at %d, %d bytes", l, c.rootOff, c.rootLen)
			}
			end := l.rootOffset + l.rootSize
			if end%4096 != 0 || end > c.size-33*512 || c.size-33*512-end >= 4096+512 {
				t.Errorf("root ends at %d: not the last 4 KiB boundary before the backup GPT at %d", end, c.size-33*512)
			}
		})
	}
}
