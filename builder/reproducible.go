package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/disk/imagediff"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// Reproducibility is what CheckReproducible found.
type Reproducibility struct {
	Same bool `json:"same"`
	// Digest is the first image's, and Rebuilt the second's.
	Digest  string `json:"digest"`
	Rebuilt string `json:"rebuilt"`
	// Second is the path of the second image: kept, with its manifest,
	// only when the two differ, for a closer look (kiln diff, cmp).
	Second string `json:"second,omitempty"`
	// Diff is kiln diff's report of the two, when they differ. It is
	// empty when only the filesystems' metadata does (the bytes differ,
	// but no file, owner, mode or package).
	Diff *imagediff.Report `json:"diff,omitempty"`
}

// CheckReproducible bakes plan a second time from scratch — a fresh work
// directory, the cached base and packages, as NoCache does — beside the
// first bake's image, and compares the two byte for byte: the same inputs
// must give the same image. It costs one bake with a warm cache.
func (b *Builder) CheckReproducible(ctx context.Context, plan *recipes.Plan, first *Result) (*Reproducibility, error) {
	ext := filepath.Ext(first.Image)
	second := strings.TrimSuffix(first.Image, ext) + ".rebuilt" + ext
	opts := b.opts
	opts.NoCache = true
	again := New(opts)
	b.note("reproducible", "baking the recipe a second time from scratch, to compare")
	base, err := recipes.ParseBase(plan.Recipe.Base)
	if err != nil {
		return nil, err
	}
	key, _, err := again.ensureImage(ctx, plan, base)
	if err != nil {
		return nil, fmt.Errorf("the second bake (checking reproducibility): %w", err)
	}
	// The cache entry's manifest has the digest: the image is copied out
	// only when it differs, for a closer look.
	rebuilt, err := again.cachedDigest(ctx, key)
	if err != nil {
		return nil, err
	}
	r := &Reproducibility{Digest: first.Info.Artifacts[0].SHA256, Rebuilt: rebuilt}
	if r.Same = r.Digest == r.Rebuilt; r.Same {
		return r, nil
	}
	res, err := again.fromCache(ctx, plan, key, second, false)
	if err != nil {
		return nil, err
	}
	step := progress.Begin(b.sink, "reproducible", 0, "the two images differ: comparing their files and packages")
	if r.Diff, err = imagediff.Images(ctx, first.Image, res.Image); err != nil {
		return nil, err
	}
	step.End("")
	r.Second = res.Image
	return r, nil
}

// cachedDigest is the sha256 of the image cached under key, from its
// manifest (fromCache checks the bytes against it whenever it copies one out).
func (b *Builder) cachedDigest(ctx context.Context, key string) (string, error) {
	release, err := b.cache.use(ctx, KindImage, key)
	if err != nil {
		return "", err
	}
	defer release()
	m, err := manifest.Read(filepath.Join(b.cache.entryPath(KindImage, key), "manifest.json"))
	if err != nil {
		return "", err
	}
	if len(m.Artifacts) != 1 {
		return "", fmt.Errorf("cached manifest lists %d artifacts", len(m.Artifacts))
	}
	return m.Artifacts[0].SHA256, nil
}
