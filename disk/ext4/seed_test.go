package ext4

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var regenSeeds = flag.Bool("seeds", false, "rebuild testdata/*.img.gz with mkfs (see testdata/README.md)")

// seedImages are small real filesystems kept in testdata: the fuzz corpus,
// and unit tests that need no e2fsprogs.
var seedImages = []struct {
	file, mkfs, features string
	kib                  int
}{
	{"ext4.img.gz", "mkfs.ext4", "^has_journal,^resize_inode", 96},
	{"inline.img.gz", "mkfs.ext4", "^has_journal,^resize_inode,inline_data", 96},
	{"ext2.img.gz", "mkfs.ext2", "^resize_inode", 64},
}

// seedFiles is the content of the seed filesystems' regular files.
var seedFiles = map[string]string{
	"etc/machine-id":   "0123456789abcdef0123456789abcdef\n",
	"etc/ssh/host_key": "secret\n",
	"d/f1":             "1\n",
	"d/f2":             "2\n",
	"d/f3":             "3\n",
	"sparse":           strings.Repeat("a", 100) + strings.Repeat("\x00", 4900) + strings.Repeat("b", 100),
	"text":             strings.Repeat("kiln reads ext4 without mounting it\n", 400), // past 12 direct blocks
	"frag":             fragSeed(),                                                   // 6 extents: depth 1
}

// fragSeed is six 1 KiB pieces with 1 KiB holes between them.
func fragSeed() string {
	var b strings.Builder
	for i := range 6 {
		b.WriteString(strings.Repeat(string(rune('A'+i)), 1024))
		if i < 5 {
			b.WriteString(strings.Repeat("\x00", 1024))
		}
	}
	return b.String()
}

var seedLinks = map[string]string{
	"link":      "/etc/machine-id",
	"slow-link": strings.Repeat("./", 40) + "etc/machine-id",
}

func seedTree(t *testing.T) string {
	dir := t.TempDir()
	for name, content := range seedFiles {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// Zero runs of 1 KiB (aligned) become holes.
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(content); off += 1024 {
			chunk := content[off:min(off+1024, len(content))]
			if strings.Trim(chunk, "\x00") != "" {
				if _, err := f.WriteAt([]byte(chunk), int64(off)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := f.Truncate(int64(len(content))); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	os.Chmod(filepath.Join(dir, "etc/ssh/host_key"), 0o600)
	for name, target := range seedLinks {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadSeed(t testing.TB, file string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSeedImages reads the committed images (regenerated with -seeds).
func TestSeedImages(t *testing.T) {
	for _, s := range seedImages {
		t.Run(s.file, func(t *testing.T) {
			if *regenSeeds {
				img := filepath.Join(t.TempDir(), "fs.img")
				tool(t, s.mkfs, "-q", "-b", "1024", "-N", "32", "-m", "0", "-L", "seed", "-U", treeUUID,
					"-E", "hash_seed="+treeUUID, "-O", s.features, "-d", seedTree(t), img, fmt.Sprintf("%dk", s.kib))
				raw, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				// mke2fs leaves a new file short when the last blocks are
				// unused; the reader wants the whole filesystem.
				raw = append(raw, make([]byte, s.kib<<10-len(raw))...)
				var gz bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
				zw.Write(raw)
				zw.Close()
				if err := os.WriteFile(filepath.Join("testdata", s.file), gz.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data := loadSeed(t, s.file)
			fsys, err := Open(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if fsys.Label() != "seed" || fsys.UUID() != treeUUID {
				t.Errorf("Label %q UUID %q", fsys.Label(), fsys.UUID())
			}
			for name, want := range seedFiles {
				if got, err := fsys.ReadFile(name); err != nil || string(got) != want {
					t.Errorf("ReadFile(%s) = %q, %v", name, got, err)
				}
			}
			for name, want := range seedLinks {
				if got, err := fsys.ReadLink(name); err != nil || got != want {
					t.Errorf("ReadLink(%s) = %q, %v", name, got, err)
				}
				if got, err := fsys.ReadFile(name); err != nil || string(got) != seedFiles["etc/machine-id"] {
					t.Errorf("ReadFile(%s) = %q, %v", name, got, err)
				}
			}
			if fi, err := fsys.Stat("etc/ssh/host_key"); err != nil || fi.Mode() != 0o600 {
				t.Errorf("Stat(host_key) = %v, %v", fi, err)
			}
			var paths []string
			fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					t.Errorf("WalkDir %s: %v", p, err)
				}
				paths = append(paths, p)
				return nil
			})
			if want := len(seedFiles) + len(seedLinks) + 5; len(paths) != want { // ., etc, etc/ssh, d, lost+found
				t.Errorf("walked %d paths, want %d: %q", len(paths), want, paths)
			}
		})
	}
}
