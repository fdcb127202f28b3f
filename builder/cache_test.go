package builder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	unlock, err := c.lock(context.Background(), "image-old")
	if err != nil {
		t.Fatal(err)
	}
	if removed, _ := c.Prune(7 * 24 * time.Hour); len(removed) != 0 {
		t.Fatalf("pruned a locked entry: %v", removed)
	}
	unlock()
	removed, err := c.Prune(7 * 24 * time.Hour)
	if err != nil || len(removed) != 1 || removed[0].Key != "old" {
		t.Fatalf("Prune(7d): %v %v", removed, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("old entry still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("fresh entry removed")
	}
	if removed, _ := c.Prune(0); len(removed) != 2 {
		t.Errorf("Prune(0) removed %d, want everything left (2)", len(removed))
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
