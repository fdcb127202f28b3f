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
//	bases/<key>/base.tar, base.json      package bases, keyed by their inputs
//	images/<key>/image.*, manifest.json  finished images, keyed by the recipe's image inputs
//	apt-archives/*.deb                   downloaded packages, shared by every build
//	downloads/sha256/<hex>               image bases fetched from URLs, by digest
//	kept/<key>/                          trees and raw disks kept with --keep-workdir
//	blobs/sha256/<hex>                   registry blobs kiln pulled or made (package registry)
//	blobs/partial/<hex>                  interrupted pulls, resumed by the next pull
//	tmp/<name>.<pid>.<n>/                work in progress; renamed into place when complete
//	locks/<kind>-<key>.lock              one lock per entry (see Cache.lockPath)
//
// Entries appear by rename, so an interrupted build never leaves a partial
// entry; work directories of dead processes are removed on the next run.
// Whoever builds an entry holds its lock exclusively; whoever uses one
// holds it shared; Prune removes only entries it can lock exclusively, so
// nothing a running build uses is ever pruned.
type Cache struct {
	Dir string
}

// Kind is a kind of cache entry.
type Kind string

// The kinds of entries, each in its own directory.
const (
	KindBase     Kind = "base"     // bases/<key>
	KindImage    Kind = "image"    // images/<key>
	KindPackages Kind = "packages" // apt-archives (one entry, key packagesKey)
	KindDownload Kind = "download" // downloads/sha256/<hex>
	KindKept     Kind = "kept"     // kept/<key>
	KindTemp     Kind = "tmp"      // tmp/<name>.<pid>.<n>
	KindBlob     Kind = "blob"     // blobs/sha256/<hex>
	KindPartial  Kind = "partial"  // blobs/partial/<hex>
)

// packagesKey is the key of the one packages entry.
const packagesKey = "apt-archives"

// entryPath is where an entry lives.
func (c *Cache) entryPath(kind Kind, key string) string {
	switch kind {
	case KindBase:
		return c.path("bases", key)
	case KindImage:
		return c.path("images", key)
	case KindPackages:
		return c.path("apt-archives")
	case KindDownload:
		return c.path("downloads", "sha256", key)
	case KindKept:
		return c.path("kept", key)
	case KindTemp:
		return c.path("tmp", key)
	case KindBlob:
		return c.path("blobs", "sha256", key)
	case KindPartial:
		return c.path("blobs", "partial", key)
	}
	panic("builder: unknown cache kind " + string(kind)) // a programming error, caught by every test
}

// lockPath is the lock of an entry: the one place lock names come from.
func (c *Cache) lockPath(kind Kind, key string) string {
	if kind == KindPartial {
		// The registry package's pull holds this one while it downloads.
		return c.path("blobs", "partial", key+".lock")
	}
	return c.path("locks", string(kind)+"-"+key+".lock")
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

// build locks an entry for building (exclusive), waiting for other
// builders and users until ctx ends.
func (c *Cache) build(ctx context.Context, kind Kind, key string) (func(), error) {
	if err := os.MkdirAll(c.path("locks"), 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return flock.Lock(ctx, c.lockPath(kind, key))
}

// use locks an entry for reading (shared): it is not pruned or rebuilt
// until the returned function is called. It also marks the entry used,
// for Prune's age.
func (c *Cache) use(ctx context.Context, kind Kind, key string) (func(), error) {
	if err := os.MkdirAll(c.path("locks"), 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	release, err := flock.Shared(ctx, c.lockPath(kind, key))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	os.Chtimes(c.entryPath(kind, key), now, now)
	return release, nil
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

// commit moves a finished temp directory to its entry path. The caller
// holds the entry's build lock.
func (c *Cache) commit(tmp string, kind Kind, key string) error {
	dst := c.entryPath(kind, key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.RemoveAll(dst) // a stale entry, e.g. from a layout change
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
		if pid, ok := tempOwner(e.Name()); ok && pid != os.Getpid() && !processAlive(pid) {
			p := c.path("tmp", e.Name())
			freed += dirSize(p)
			os.RemoveAll(p)
		}
	}
	return freed
}

// tempOwner is the pid in a work directory's name.
func tempOwner(name string) (int, bool) {
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	return pid, err == nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Entry is one cached item, for kiln cache ls and prune.
type Entry struct {
	Kind Kind   `json:"kind"`
	Key  string `json:"key"`
	Path string `json:"path"`
	// Size is the disk space the entry takes (images are sparse).
	Size     int64     `json:"size"`
	LastUsed time.Time `json:"lastUsed"`
	Info     string    `json:"info,omitempty"`
}

// List returns every entry in the cache, most recently used first.
func (c *Cache) List() ([]Entry, error) {
	out := []Entry{}
	dirs := []struct {
		kind Kind
		dir  string
	}{{KindBase, "bases"}, {KindImage, "images"}, {KindDownload, "downloads/sha256"}, {KindKept, "kept"}, {KindTemp, "tmp"},
		{KindBlob, "blobs/sha256"}, {KindPartial, "blobs/partial"}}
	for _, d := range dirs {
		entries, err := os.ReadDir(c.path(d.dir))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".lock") {
				continue
			}
			out = append(out, c.entry(d.kind, e.Name()))
		}
	}
	if _, err := os.Stat(c.entryPath(KindPackages, packagesKey)); err == nil {
		out = append(out, c.entry(KindPackages, packagesKey))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

func (c *Cache) entry(kind Kind, key string) Entry {
	p := c.entryPath(kind, key)
	e := Entry{Kind: kind, Key: key, Path: p, Size: dirSize(p), Info: describeEntry(kind, p)}
	if st, err := os.Stat(p); err == nil {
		e.LastUsed = st.ModTime()
	}
	return e
}

// DefaultPruneAge is how long an entry must have gone unused before Prune
// removes it when no age is given.
const DefaultPruneAge = 7 * 24 * time.Hour

// PruneOptions say what Prune removes.
type PruneOptions struct {
	// OlderThan removes entries unused for at least this long; 0 means
	// DefaultPruneAge.
	OlderThan time.Duration
	// All removes every entry not in use, whatever its age.
	All bool
	// DryRun lists what would be removed, and removes nothing.
	DryRun bool
}

// PruneResult is what Prune removed (or would remove) and what it kept
// because a running build uses it.
type PruneResult struct {
	Removed []Entry `json:"removed"`
	InUse   []Entry `json:"inUse"`
	// Freed is the disk space the removed entries took.
	Freed int64 `json:"freed"`
	// Stale is what work directories of killed builds took; they are
	// always removed (unless DryRun).
	Stale int64 `json:"stale"`
}

// Prune removes entries not used for opts.OlderThan (or all with
// opts.All), and work directories left by killed builds. Entries a running
// build holds — building or using them — are kept and listed as in use.
func (c *Cache) Prune(opts PruneOptions) (*PruneResult, error) {
	res := &PruneResult{Removed: []Entry{}, InUse: []Entry{}}
	if !opts.DryRun {
		res.Stale = c.cleanStale()
	}
	age := opts.OlderThan
	if age <= 0 {
		age = DefaultPruneAge
	}
	entries, err := c.List()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.path("locks"), 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	for _, e := range entries {
		if e.Kind == KindTemp || (!opts.All && time.Since(e.LastUsed) < age) {
			continue
		}
		unlock, err := flock.TryLock(c.lockPath(e.Kind, e.Key))
		if err != nil {
			res.InUse = append(res.InUse, e)
			continue
		}
		if opts.DryRun || os.RemoveAll(e.Path) == nil {
			res.Removed = append(res.Removed, e)
			res.Freed += e.Size
		}
		unlock()
	}
	return res, nil
}

func describeEntry(kind Kind, p string) string {
	switch kind {
	case KindBase:
		if b, err := os.ReadFile(filepath.Join(p, "base.json")); err == nil {
			var m struct {
				Suite string `json:"suite"`
			}
			if jsonUnmarshal(b, &m) == nil {
				return "debian:" + m.Suite
			}
		}
	case KindImage:
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
	case KindPartial:
		return "interrupted pull; the next pull of it resumes here"
	case KindTemp:
		if pid, ok := tempOwner(filepath.Base(p)); ok {
			return fmt.Sprintf("work in progress of pid %d", pid)
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
