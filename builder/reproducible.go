package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/disk/imagediff"
	"github.com/kiln-project/kiln/internal/progress"
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
	res, err := again.Bake(ctx, plan, second)
	if err != nil {
		return nil, fmt.Errorf("the second bake (checking reproducibility): %w", err)
	}
	r := &Reproducibility{Digest: first.Info.Artifacts[0].SHA256, Rebuilt: res.Info.Artifacts[0].SHA256}
	r.Same = r.Digest == r.Rebuilt
	if r.Same {
		os.Remove(res.Image)
		os.Remove(res.Manifest)
		return r, nil
	}
	step := progress.Begin(b.sink, "reproducible", 0, "the two images differ: comparing their files and packages")
	if r.Diff, err = imagediff.Images(ctx, first.Image, res.Image); err != nil {
		return nil, err
	}
	step.End("")
	r.Second = res.Image
	return r, nil
}
