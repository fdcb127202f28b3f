package builder

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln/manifest"
)

func TestPackagesEpoch(t *testing.T) {
	r := root{dir: t.TempDir()}
	if _, ok, err := packagesEpoch(r); err != nil || ok {
		t.Fatalf("no packages: ok %v, err %v; want neither", ok, err)
	}
	older := time.Date(2025, 4, 9, 22, 5, 46, 0, time.UTC)
	newest := time.Date(2026, 11, 20, 17, 6, 56, 0, time.UTC)
	for name, when := range map[string]time.Time{"a": older, "b": newest, "c": older} {
		p := filepath.Join(r.dir, "usr/share/doc", name, "copyright")
		mkfile(t, p, when)
	}
	// A later file that is no package's copyright does not count.
	mkfile(t, filepath.Join(r.dir, "usr/share/doc/b/NEWS"), newest.Add(time.Hour))
	got, ok, err := packagesEpoch(r)
	if err != nil || !ok || !got.Equal(newest) {
		t.Fatalf("packagesEpoch = %v, %v, %v; want %v", got, ok, err, newest)
	}
	b := New(Options{CacheDir: t.TempDir()})
	if when, from, err := b.treeEpoch(r); err != nil || !when.Equal(newest) || from != manifest.EpochFromPackages {
		t.Errorf("derived treeEpoch = %v, %q, %v", when, from, err)
	}
	given := time.Unix(1700000000, 0).UTC()
	b = New(Options{CacheDir: t.TempDir(), Epoch: given})
	if when, from, err := b.treeEpoch(r); err != nil || !when.Equal(given) || from != manifest.EpochFromEnvironment {
		t.Errorf("given treeEpoch = %v, %q, %v", when, from, err)
	}
}

func TestClampTimes(t *testing.T) {
	r := root{dir: t.TempDir()}
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := epoch.Add(-48 * time.Hour)
	mkfile(t, filepath.Join(r.dir, "usr/bin/packaged"), old)
	mkfile(t, filepath.Join(r.dir, "etc/written-by-the-bake"), time.Now())
	target := filepath.Join(r.dir, "usr/bin/packaged")
	link := filepath.Join(r.dir, "etc/link")
	if err := os.Symlink("../usr/bin/packaged", link); err != nil {
		t.Fatal(err)
	}
	if err := clampTimes(r, epoch); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]time.Time{target: old, filepath.Join(r.dir, "etc/written-by-the-bake"): epoch, link: epoch, filepath.Join(r.dir, "etc"): epoch} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
			t.Errorf("%s: mtime %v, want %v", p, got.UTC(), want)
		}
	}
}

func mkfile(t *testing.T, p string, when time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}
