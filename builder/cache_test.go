package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
)

func TestCacheListPrune(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	mk := func(kind, key, file string, age time.Duration) string {
		d := c.path(kind, key)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, file), make([]byte, 8192), 0o644)
		when := time.Now().Add(-age)
		os.Chtimes(d, when, when)
		return d
	}
	old := mk("images", "old", "image.qcow2", 30*24*time.Hour)
	fresh := mk("images", "fresh", "image.qcow2", time.Hour)
	mk("bases", "b1", "base.tar", 2*time.Hour)
	entries, err := c.List()
	if err != nil || len(entries) != 3 {
		t.Fatalf("List: %v %v", entries, err)
	}
	for _, e := range entries {
		if e.Size < 8192 {
			t.Errorf("%s: size %d", e.Key, e.Size)
		}
	}
	// An entry in use by a running build (its lock held) is kept.
	unlock, err := c.build(context.Background(), KindImage, "old")
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Prune(PruneOptions{}); len(res.Removed) != 0 || len(res.InUse) != 1 {
		t.Fatalf("pruned a locked entry: %+v", res)
	}
	unlock()
	// A dry run lists, removes nothing.
	if res, _ := c.Prune(PruneOptions{DryRun: true}); len(res.Removed) != 1 || res.Freed < 8192 {
		t.Fatalf("dry run: %+v", res)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal("a dry run removed the entry")
	}
	// No options: only what is unused for DefaultPruneAge.
	res, err := c.Prune(PruneOptions{})
	if err != nil || len(res.Removed) != 1 || res.Removed[0].Key != "old" || res.Freed < 8192 {
		t.Fatalf("Prune(): %+v %v", res, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("old entry still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("fresh entry removed")
	}
	if res, _ := c.Prune(PruneOptions{OlderThan: 90 * time.Minute}); len(res.Removed) != 1 || res.Removed[0].Kind != KindBase {
		t.Errorf("Prune(90m) removed %+v, want only the base used 2h ago", res.Removed)
	}
	if res, _ := c.Prune(PruneOptions{All: true}); len(res.Removed) != 1 {
		t.Errorf("Prune(all) removed %d, want everything left (1)", len(res.Removed))
	}
}

func TestCleanStale(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	mine, err := c.tempDir("bake")
	if err != nil {
		t.Fatal(err)
	}
	dead := c.path("tmp", "bake.999999999.1") // no such pid
	os.MkdirAll(dead, 0o755)
	os.WriteFile(filepath.Join(dead, "x"), make([]byte, 4096), 0o644)
	if freed := c.cleanStale(); freed == 0 {
		t.Error("nothing freed")
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("a dead build's work directory survived")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Error("a live build's work directory was removed")
	}
}

// TestPruneKeepsBakePackages: a prune while a bake installs packages keeps
// the shared package cache the bake has bind-mounted.
func TestPruneKeepsBakePackages(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	os.MkdirAll(c.path("apt-archives"), 0o755)
	os.WriteFile(c.path("apt-archives", "htop_3.2.2-2_amd64.deb"), make([]byte, 4096), 0o644)
	unlock, err := c.build(context.Background(), KindPackages, packagesKey) // what stepBake holds
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if res, _ := c.Prune(PruneOptions{All: true}); len(res.InUse) != 1 || res.InUse[0].Kind != KindPackages {
		t.Errorf("in use: %+v", res.InUse)
	}
	if _, err := os.Stat(c.path("apt-archives", "htop_3.2.2-2_amd64.deb")); err != nil {
		t.Fatalf("prune removed the package cache under a running bake: %v", err)
	}
}

// TestPruneKeepsWhatABuildReads: an image a VM bake boots from (or a
// download) is held shared; a prune keeps it, and a second reader is fine.
func TestPruneKeepsWhatABuildReads(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	os.MkdirAll(c.entryPath(KindImage, "base"), 0o755)
	os.WriteFile(filepath.Join(c.entryPath(KindImage, "base"), "image.qcow2"), make([]byte, 4096), 0o644)
	ctx := context.Background()
	r1, err := c.use(ctx, KindImage, "base")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.use(ctx, KindImage, "base")
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Prune(PruneOptions{All: true}); len(res.Removed) != 0 {
		t.Fatalf("pruned an image in use: %+v", res)
	}
	r1()
	r2()
	if res, _ := c.Prune(PruneOptions{All: true}); len(res.Removed) != 1 {
		t.Fatalf("unused image kept: %+v", res)
	}
}

// Registry blobs and interrupted pulls are cache entries too: listed,
// pruned by age, and an interrupted pull a running pull holds is kept.
func TestCacheRegistryBlobs(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	hex := strings.Repeat("ab", 32)
	part := strings.Repeat("cd", 32)
	os.MkdirAll(c.path("blobs", "sha256"), 0o755)
	os.MkdirAll(c.path("blobs", "partial"), 0o755)
	os.WriteFile(c.path("blobs", "sha256", hex), make([]byte, 4096), 0o644)
	os.WriteFile(c.path("blobs", "partial", part), make([]byte, 4096), 0o644)
	os.WriteFile(c.path("blobs", "partial", part+".lock"), nil, 0o644)
	entries, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Kind]string{}
	for _, e := range entries {
		kinds[e.Kind] = e.Key
	}
	if len(entries) != 2 || kinds[KindBlob] != hex || kinds[KindPartial] != part {
		t.Fatalf("List: %+v", entries)
	}
	// The registry package's pull holds the partial's lock while it downloads.
	unlock, err := flock.TryLock(c.path("blobs", "partial", part+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Prune(PruneOptions{All: true})
	unlock()
	if err != nil || len(res.Removed) != 1 || res.Removed[0].Kind != KindBlob || len(res.InUse) != 1 {
		t.Fatalf("Prune: %+v %v", res, err)
	}
	if _, err := os.Stat(c.path("blobs", "partial", part)); err != nil {
		t.Fatalf("prune removed a pull in progress: %v", err)
	}
}
