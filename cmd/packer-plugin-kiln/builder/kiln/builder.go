// Package kiln is the plugin's builder, `source "kiln" "NAME"`: it bakes a
// kiln recipe with kiln's own builder package (offline for package bases,
// in a VM for image bases), optionally runs kiln test's checks on the
// image, and returns the image and its manifest as the artifact.
package kiln

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/internal/uisink"
	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/internal/epoch"
)

// BuilderID identifies the kiln builder's artifacts (kiln-push accepts
// only these).
const BuilderID = "kiln-project.kiln"

// Builder bakes a kiln recipe.
type Builder struct {
	config Config
}

// ConfigSpec is the builder's HCL2 schema.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes and checks the configuration, the recipe included.
func (b *Builder) Prepare(raws ...interface{}) (generatedVars []string, warnings []string, err error) {
	if err := b.config.Prepare(raws...); err != nil {
		return nil, nil, err
	}
	return nil, nil, nil
}

// Run bakes the recipe into the output directory. On any failure, and on
// cancellation (Ctrl-C), the output directory is removed, so nothing of
// the image is left: builder.Bake writes it
// atomically and stops QEMU and cleans its work directory on cancel.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	plan, err := c.source().Plan()
	if err != nil {
		return nil, err
	}
	when, err := epoch.Lookup()
	if err != nil {
		return nil, err
	}
	name := c.ImageName
	if name == "" {
		name = plan.Recipe.Name + "." + plan.Recipe.Disk.Format
	}
	dir, err := filepath.Abs(c.OutputDirectory)
	if err != nil {
		return nil, err
	}
	if err := prepareOutputDir(dir, c.PackerForce); err != nil {
		return nil, err
	}
	ok := false
	image := filepath.Join(dir, name)
	defer func() {
		if ok {
			return
		}
		// Nothing half-made survives a failed or cancelled build.
		os.RemoveAll(dir)
	}()

	sink := uisink.New(ui)
	recipeName := c.Recipe
	if recipeName == "" {
		recipeName = "recipe_content"
	}
	ui.Say(fmt.Sprintf("Baking %s (%s, base %s) into %s", plan.Recipe.Name, recipeName, plan.Recipe.Base, image))
	bk := builder.New(builder.Options{
		Epoch:       when,
		CacheDir:    c.CacheDir,
		Mirror:      c.Mirror,
		NoCache:     c.NoCache,
		BakeTimeout: c.BakeTimeout,
		Progress:    sink,
	})
	res, err := bk.Bake(ctx, plan, image)
	if err != nil {
		return nil, cancelled(ctx, "bake", err)
	}
	if c.Test {
		ui.Say("Testing the image: kiln test's checks, in a guest under QEMU")
		reports, err := imagetest.Run(ctx, imagetest.ForPlan(res.Image, plan), imagetest.Options{
			Firmware: c.TestFirmware, BootTimeout: c.TestBootTimeout, Progress: sink, Epoch: when,
		})
		if err != nil {
			return nil, cancelled(ctx, "test", err)
		}
		if err := verdict(reports); err != nil {
			return nil, err
		}
		for _, r := range reports {
			ui.Message(fmt.Sprintf("test %s: ok, cloud-init %s after %s, %d checks passed", r.Firmware, r.CloudInit.Status, r.BootTime, len(r.Checks)))
		}
	}
	a := res.Info.Artifacts[0]
	how := "baked"
	if res.Cached {
		how = "unchanged recipe, reused from kiln's cache"
	}
	ui.Say(fmt.Sprintf("%s: %s (%d MiB, %s)", plan.Recipe.Name, how, a.Size>>20, a.SHA256))
	ok = true
	return &Artifact{
		Dir:          dir,
		Image:        res.Image,
		Manifest:     res.Manifest,
		Digest:       a.SHA256,
		RecipeFile:   plan.Recipe.File(),
		RecipeName:   plan.Recipe.Name,
		RecipeDigest: plan.Digest,
		Cached:       res.Cached,
	}, nil
}

// prepareOutputDir makes dir, which must not exist unless force is set
// (packer build -force: it is emptied), as Packer's own builders do. The
// build owns it from then on: a failed build removes it.
func prepareOutputDir(dir string, force bool) error {
	if _, err := os.Stat(dir); err == nil {
		if !force {
			return fmt.Errorf("output directory %s exists: remove it, or run packer build -force", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return os.MkdirAll(dir, 0o755)
}

// cancelled says plainly that a build was interrupted, rather than
// showing the context error of whichever step was running.
func cancelled(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%s cancelled; nothing was left in the output directory", what)
	}
	return err
}

// verdict turns failed test reports into one error that says what failed.
func verdict(reports []imagetest.Report) error {
	var errs []error
	for _, r := range reports {
		if r.OK {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "test %s: %s", r.Firmware, r.Error)
		for _, c := range r.Checks {
			if !c.OK && !c.Skipped {
				fmt.Fprintf(&b, "\n  check %s: FAILED: %s", c.Name, c.Detail)
			}
		}
		if r.ConsoleTail != "" {
			fmt.Fprintf(&b, "\n  last console lines:\n    %s", strings.ReplaceAll(strings.TrimRight(r.ConsoleTail, "\n"), "\n", "\n    "))
		}
		errs = append(errs, errors.New(b.String()))
	}
	if len(errs) > 0 {
		return fmt.Errorf("the image failed its test, so no artifact is kept:\n%w", errors.Join(errs...))
	}
	return nil
}
