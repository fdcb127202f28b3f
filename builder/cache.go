package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
)

// Cache is kiln's content-addressed build cache:
//
//	bases/<key>/base.tar, base.json    package bases, keyed by their inputs
//	images/<key>/image.*, manifest.json finished images, keyed by the recipe's image inputs
//	apt-archives/*.deb                  downloaded packages, shared by every build
//	tmp/<name>.<pid>.<n>/               work in progress; renamed into place when complete
//	locks/                              one flock per key, so parallel builds don't collide
//
// Entries appear by rename, so an interrupted build never leaves a partial
// entry; work directories of dead processes are removed on the next run.
type Cache struct {
	Dir string
}

// DefaultCacheDir is $XDG_CACHE_HOME/kiln or ~/.cache/kiln.
func DefaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kiln")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "kiln")
	}
	return filepath.Join(os.TempDir(), "kiln-cache")
}

func (c *Cache) path(parts ...string) string {
	return filepath.Join(append([]string{c.Dir}, parts...)...)
}

var tempSeq int

// tempDir makes a work directory inside the cache (same filesystem as the
// entries, so commit is a rename). Its name carries our pid, which is how
// cleanStale knows whether its owner is gone.
func (c *Cache) tempDir(name string) (string, error) {
	if err := os.MkdirAll(c.path("tmp"), 0o700); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	tempSeq++
	d := c.path("tmp", fmt.Sprintf("%s.%d.%d", name, os.Getpid(), tempSeq))
	os.RemoveAll(d)
	if err := os.Mkdir(d, 0o700); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	return d, nil
}

// commit moves a finished temp directory to its entry path.
func (c *Cache) commit(tmp, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.RemoveAll(dst) // a stale entry, e.g. from a layout change; we hold the lock
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// cleanStale removes work directories whose process is gone (a build that
// was killed) and reports how many bytes that freed.
func (c *Cache) cleanStale() int64 {
	entries, _ := os.ReadDir(c.path("tmp"))
	var freed int64
	for _, e := range entries {
		parts := strings.Split(e.Name(), ".")
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		p := c.path("tmp", e.Name())
		freed += dirSize(p)
		os.RemoveAll(p)
	}
	return freed
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lock takes an exclusive lock named name, waiting while another kiln holds
// it, until ctx ends.
func (c *Cache) lock(ctx context.Context, name string) (func(), error) {
	if err := os.MkdirAll(c.path("locks"), 0o755); err != nil {
		return nil, err
	}
	return flock.Lock(ctx, c.path("locks", name+".lock"))
}

// Entry is one cached item, for kiln cache ls.
type Entry struct {
	Kind    string    `json:"kind"` // base, image, packages, tmp
	Key     string    `json:"key"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
	Info    string    `json:"info,omitempty"`
}

// List returns every entry in the cache.
func (c *Cache) List() ([]Entry, error) {
	var out []Entry
	for _, kind := range []string{"bases", "images", "kept", "tmp"} {
		entries, err := os.ReadDir(c.path(kind))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			p := c.path(kind, e.Name())
			info, _ := e.Info()
			en := Entry{Kind: strings.TrimSuffix(kind, "s"), Key: e.Name(), Path: p, Size: dirSize(p)}
			if info != nil {
				en.ModTime = info.ModTime()
			}
			en.Info = describeEntry(kind, p)
			out = append(out, en)
		}
	}
	if st, err := os.Stat(c.path("apt-archives")); err == nil {
		out = append(out, Entry{Kind: "packages", Key: "apt-archives", Path: c.path("apt-archives"), Size: dirSize(c.path("apt-archives")), ModTime: st.ModTime()})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ModTime.After(out[j].ModTime) })
	return out, nil
}

// Prune removes entries not used for longer than olderThan (all of them when
// olderThan is 0) and returns what it removed. Entries locked by a running
// build are kept.
func (c *Cache) Prune(olderThan time.Duration) ([]Entry, error) {
	c.cleanStale()
	entries, err := c.List()
	if err != nil {
		return nil, err
	}
	var removed []Entry
	for _, e := range entries {
		if e.Kind == "tmp" || (olderThan > 0 && time.Since(e.ModTime) < olderThan) {
			continue
		}
		unlock, err := c.tryLock(e.Kind + "-" + e.Key)
		if err != nil {
			continue // in use
		}
		if err := os.RemoveAll(e.Path); err == nil {
			removed = append(removed, e)
		}
		unlock()
	}
	return removed, nil
}

func (c *Cache) tryLock(name string) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return c.lock(ctx, name)
}

func describeEntry(kind, p string) string {
	switch kind {
	case "bases":
		if b, err := os.ReadFile(filepath.Join(p, "base.json")); err == nil {
			var m struct {
				Suite string `json:"suite"`
			}
			if jsonUnmarshal(b, &m) == nil {
				return "debian:" + m.Suite
			}
		}
	case "images":
		if b, err := os.ReadFile(filepath.Join(p, "manifest.json")); err == nil {
			var m struct {
				Recipe struct {
					Name string `json:"name"`
				} `json:"recipe"`
			}
			if jsonUnmarshal(b, &m) == nil {
				return m.Recipe.Name
			}
		}
	}
	return ""
}

func dirSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512 // real usage: images are sparse
				} else {
					n += info.Size()
				}
			}
		}
		return nil
	})
	return n
}

// shortDigest is a 32-hex-digit SHA-256 prefix, for cache keys.
func shortDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
