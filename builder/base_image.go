package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/fetch"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
)

// imageBase is a base that is already a disk image, ready to boot.
type imageBase struct {
	Path   string // local file (in the cache for downloads)
	Format string // qcow2 or raw
	// VirtualSize is the disk size the guest sees, in bytes.
	VirtualSize int64
	// done releases the cache entry the base is read from, if any.
	done   func()
	SHA256 string // hex digest of the file
	Ref    string // what the recipe said
	Suite  string // a package base baked into an image: its release's codename
}

// release lets go of the cache entry the base was read from.
func (b *imageBase) release() {
	if b.done != nil {
		b.done()
	}
}

// resolveImageBase finds, downloads or verifies an image base and names
// its format; anything but a qcow2 or raw disk image is refused, naming what
// the file is.
func (b *Builder) resolveImageBase(ctx context.Context, plan *recipes.Plan, base recipes.Base) (*imageBase, error) {
	var path, sum string
	switch base.Kind {
	case recipes.BaseFile:
		path = base.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(plan.Recipe.Dir(), path)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, &recipes.Error{Pos: plan.Recipe.Position("base"), Path: "base", Msg: fmt.Sprintf("base image %s: %v", base.Path, unwrapPath(err))}
		}
		b.note("base", "hashing %s", base.Path)
		d, err := digest.File(path)
		if err != nil {
			return nil, err
		}
		sum = d.Hex
	case recipes.BaseURL:
		f := &fetch.Fetcher{Dir: b.cache.path("downloads"), Sink: b.sink}
		res, err := f.Fetch(ctx, fetch.Request{URL: base.URL, SHA256: base.SHA256, SumsURL: base.Sums})
		if err != nil {
			return nil, err
		}
		if res.Cached {
			b.note("base", "using the cached download of %s", base.URL)
		}
		path, sum = res.Path, res.SHA256
		// Held until the VM bake is done with it: a prune keeps it.
		release, err := b.cache.use(ctx, KindDownload, sum)
		if err != nil {
			return nil, err
		}
		img, err := b.vetBase(ctx, plan, base, path, sum)
		if err != nil {
			release()
			return nil, err
		}
		img.done = release
		return img, nil
	case recipes.BaseOCI:
		return b.pullBase(ctx, plan, base)
	default:
		return nil, fmt.Errorf("bake: base %s is not a disk image", base)
	}
	return b.vetBase(ctx, plan, base, path, sum)
}

// vetBase checks an image base before anything opens it: a qcow2 or raw
// disk of a sane size, with no backing file, external data file or
// encryption (image.Check), and a raw one that looks like a disk. opts raise
// the size limit for kiln's own images.
func (b *Builder) vetBase(ctx context.Context, plan *recipes.Plan, base recipes.Base, path, sum string, opts ...image.Option) (*imageBase, error) {
	bad := func(format string, args ...any) error {
		return &recipes.Error{Pos: plan.Recipe.Position("base"), Path: "base", Msg: fmt.Sprintf(format, args...)}
	}
	info, err := image.Check(path, opts...)
	switch {
	case errors.Is(err, image.ErrFormat):
		return nil, bad("base %s is not a disk image kiln can boot (want qcow2 or raw): %v", base, trimImage(err))
	case err != nil:
		return nil, bad("base %s: %v", base, trimImage(err))
	}
	if info.Format == image.Raw {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if !looksBootable(f) {
			return nil, bad("base %s is raw data with neither a partition table nor a boot sector: not a disk image", base)
		}
	}
	return &imageBase{Path: path, Format: string(info.Format), VirtualSize: info.VirtualSize, SHA256: sum, Ref: base.String()}, nil
}

// trimImage drops the "image: " in front of disk/image's errors.
func trimImage(err error) string { return strings.TrimPrefix(err.Error(), "image: ") }

// looksBootable reports an MBR boot signature or a GPT header on a raw disk.
func looksBootable(f *os.File) bool {
	b := make([]byte, 1024)
	if n, _ := f.ReadAt(b, 0); n < 1024 {
		return false
	}
	return (b[510] == 0x55 && b[511] == 0xAA) || string(b[512:520]) == "EFI PART"
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// pullBase pulls an oci:// base through the registry package (verified,
// resumable, its blobs cached) into the cache's downloads by disk digest,
// and records the reference pinned to the digest it resolved to.
func (b *Builder) pullBase(ctx context.Context, plan *recipes.Plan, base recipes.Base) (*imageBase, error) {
	bad := func(err error) error {
		return &recipes.Error{Pos: plan.Recipe.Position("base"), Path: "base", Msg: fmt.Sprintf("base %s: %v", base, err)}
	}
	ref, err := registry.ParseRef("oci://" + base.Ref)
	if err != nil {
		return nil, bad(err)
	}
	c := b.opts.Registry
	if c == nil {
		c = registry.New(registry.Options{CacheDir: b.cache.Dir, Progress: b.sink})
	}
	tmp, err := b.cache.tempDir("oci-base")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	res, err := c.Pull(ctx, registry.PullRequest{Ref: ref, Out: filepath.Join(tmp, "base.img")})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, bad(err)
	}
	b.note("base", "pulled %s@%s", base.Ref, res.Digest)
	sum := strings.TrimPrefix(res.DiskDigest, "sha256:")
	dst := b.cache.entryPath(KindDownload, sum)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dst); err != nil {
		if err := os.Rename(res.Out, dst); err != nil {
			return nil, err
		}
	}
	release, err := b.cache.use(ctx, KindDownload, sum)
	if err != nil {
		return nil, err
	}
	img, err := b.vetBase(ctx, plan, base, dst, sum)
	if err != nil {
		release()
		return nil, err
	}
	img.done = release
	// Pinned: the manifest says exactly which image the bake started from.
	img.Ref = "oci://" + pinned(ref, res.Digest)
	return img, nil
}

// pinned is a registry reference by digest.
func pinned(ref registry.Ref, digest string) string {
	if ref.Remote != nil {
		return ref.Remote.Context().Name() + "@" + digest
	}
	return ref.String()
}
