package builder

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/internal/epoch"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/registry"
)

// Options configure a Builder. Zero values have documented defaults.
type Options struct {
	// CacheDir holds bases, finished images and packages; default
	// DefaultCacheDir().
	CacheDir string
	// Mirror overrides the Debian archive of package bases (the recipe's
	// bake.mirror wins over it); default: the build host's apt sources.
	Mirror string
	// AptDir is where the host's apt sources are read; default /etc/apt.
	AptDir string
	// Datasources are cloud-init datasources tried after NoCloud; default none
	// (NoCloud, then None).
	Datasources []string
	// KeepWorkDir keeps the baked tree and the raw disk of a successful
	// bake in the cache's kept/<key>/ (see KeptDir), for debugging and
	// benchmarks; a failed bake's work directory is always removed.
	KeepWorkDir bool
	// NoCache rebuilds the image even when an identical one is cached
	// (bases and packages are still reused).
	NoCache bool
	// Progress receives progress events; default progress.Discard.
	Progress progress.Sink
	// Epoch stamps what the build makes (the build's SOURCE_DATE_EPOCH,
	// read with internal/epoch.Lookup). Zero: a package-based image takes
	// the newest date of its packages (see packagesEpoch), anything else
	// epoch.Default.
	Epoch time.Time
	// QemuImg runs qemu-img; default qemu.Img{} (qemu-img from PATH).
	QemuImg ImageTool
	// Boot starts the guests of VM bakes; the zero value runs QEMU.
	Boot boot.Runner
	// BakeTimeout bounds a VM bake; default DefaultBakeTimeout.
	BakeTimeout time.Duration
	// PowerOffGrace is how long a VM-baked guest that has cleaned itself
	// may take to power off; default DefaultPowerOffGrace.
	PowerOffGrace time.Duration
	// NoBootTuning bakes without kiln's boot-time tuning (pinned
	// datasource list, trimmed cloud-init modules, fast host keys), so a
	// benchmark can measure what the tuning buys. Not for real images.
	NoBootTuning bool
	// Lock pins the package set (a recipe's package lock, read from
	// LockFile, whose digest is LockDigest): package bases install exactly
	// its versions, and the bake fails naming any package it cannot. Image
	// bases cannot be locked.
	Lock       *manifest.Lock
	LockFile   string
	LockDigest string
	// RefreshBase rebuilds the package base from the mirror as it is now,
	// even when one is cached (kiln lock update).
	RefreshBase bool
	// MirrorKeyring is an OpenPGP keyring (file) that signs the mirrors'
	// Release files, trusted besides the build host's apt keys: an internal
	// mirror published with its own key.
	MirrorKeyring string
	// SecurityMirror serves <suite>-security: "" for the host's apt
	// sources' (when Mirror is set too), "none" for no security source.
	SecurityMirror string
	// Registry pulls oci:// bases; default: a client with kiln's default
	// credentials, its blob cache in CacheDir.
	Registry *registry.Client
}

// ImageTool is what the bake pipeline needs of qemu-img. qemu.Img
// implements it; unit tests use fakes.
type ImageTool interface {
	Info(ctx context.Context, path string) (*qemu.ImageInfo, error)
	Check(ctx context.Context, path string) error
	CompareImages(ctx context.Context, a, b qemu.Image) error
	ConvertImage(ctx context.Context, src qemu.Image, dst string, o qemu.ConvertOptions) error
}

// Builder bakes images. It is safe to use from one goroutine at a time;
// several processes may share a cache.
type Builder struct {
	opts  Options
	cache *Cache
	sink  progress.Sink
	epoch time.Time
	// fixedEpoch: Options.Epoch was given, so no image derives its own.
	fixedEpoch bool
	// offline is the offline bake's steps: offlineSteps, or fakes in the
	// unit tests of the cache decisions around them.
	offline func() []bakeStep
}

// New returns a Builder.
func New(opts Options) *Builder {
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.AptDir == "" {
		opts.AptDir = "/etc/apt"
	}
	if opts.QemuImg == nil {
		opts.QemuImg = qemu.Img{}
	}
	b := &Builder{opts: opts, cache: &Cache{Dir: opts.CacheDir}, sink: progress.Or(opts.Progress), epoch: epoch.Or(opts.Epoch), fixedEpoch: !opts.Epoch.IsZero()}
	b.offline = b.offlineSteps
	return b
}

// Cache returns the builder's cache.
func (b *Builder) Cache() *Cache { return b.cache }

func (b *Builder) note(step, format string, args ...any) {
	b.sink.Emit(progress.Event{Step: step, Kind: progress.Note, Msg: fmt.Sprintf(format, args...), Time: time.Now()})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// diskFull makes ENOSPC say what to do.
func diskFull(err error) error {
	if err != nil && strings.Contains(err.Error(), "no space left on device") {
		return fmt.Errorf("%w (free some space, or point the cache elsewhere with --cache-dir)", err)
	}
	return err
}

var errNotCached = errors.New("not cached")

// assets are the files kiln puts into guests it bakes.
//
//go:embed assets
var assets embed.FS

func asset(name string) string {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("builder: missing embedded asset " + name) // a build defect, caught by every test
	}
	return string(b)
}
