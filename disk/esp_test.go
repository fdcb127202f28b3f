package disk

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// TestPinFAT32Geometry: go-diskfs v1.9.4 makes a 64 MiB FAT32 whose FAT
// is two entries short of its clusters; pinFAT32 must refuse it, and
// accept the ESP size Assemble uses.
func TestPinFAT32Geometry(t *testing.T) {
	for _, c := range []struct {
		size int64
		err  string
	}{
		{64 * mib, "disk: ESP: the FAT has 129024 entries, 129024 clusters need 129026"},
		{espSize, ""},
	} {
		f, err := os.Create(filepath.Join(t.TempDir(), "fat.img"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(c.size); err != nil {
			t.Fatal(err)
		}
		if _, err := fat32.Create(file.New(f, false), c.size, 0, sectorSize, "ESP", true); err != nil {
			t.Fatal(err)
		}
		err = pinFAT32(f, 0, 1, time.Unix(0, 0))
		if c.err == "" && err != nil || c.err != "" && (err == nil || err.Error() != c.err) {
			t.Errorf("%d MiB: error %v, want %q", c.size/mib, err, c.err)
		}
	}
}

func TestFATDateTime(t *testing.T) {
	for _, c := range []struct {
		t           time.Time
		date, clock uint16
	}{
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), 44<<9 | 5<<5 | 6, 7<<11 | 8<<5 | 4},
		{time.Date(2024, 5, 6, 9, 8, 9, 0, time.FixedZone("X", 2*3600)), 44<<9 | 5<<5 | 6, 7<<11 | 8<<5 | 4},
		{time.Unix(0, 0), 1<<5 | 1, 0}, // before 1980: 1980-01-01
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29},
	} {
		date, clock := fatDateTime(c.t)
		if date != c.date || clock != c.clock {
			t.Errorf("fatDateTime(%v) = %#x %#x, want %#x %#x", c.t, date, clock, c.date, c.clock)
		}
	}
}
