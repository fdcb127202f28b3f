package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/internal/epoch"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
	"github.com/spf13/cobra"
)

func newBakeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bake RECIPE",
		Short: "Bake a recipe into a bootable, clean, compressed golden image",
		Long: `Builds the recipe's golden image, with a manifest beside it.

A package base (debian:trixie, the default, or debian:bookworm) is built with
mmdebstrap and cached, and the bake section is applied offline in the file
tree (no VM): then sysprep, a GPT disk that boots under BIOS and UEFI, and
qcow2 with zstd-compressed clusters. debian:stable and debian:oldstable are
the release the mirror's Release file names at bake time (recorded in the
manifest as base.suite); it must be one kiln supports.

An image base (./file.qcow2, https://example.com/image.qcow2#sha256=..., a SHA256SUMS URL) is
downloaded and verified, then booted once under QEMU with a bake seed:
cloud-init applies the bake section, the guest cleans itself and powers off,
and the result is flattened into a standalone, compressed image.
bake.mode (auto, offline, vm) chooses; auto means offline for package bases.

An unchanged recipe re-bakes as a copy of the cached image; a changed bake
section reuses the cached base. The image appears at the output path only when
it is complete, and kiln lint must pass on it.

Images are reproducible: the same recipe, kiln version and package versions
give the same bytes. Every timestamp is clamped to SOURCE_DATE_EPOCH, which
defaults to the newest build date of the image's packages (the manifest
records it). --check-reproducible proves it for one recipe: it bakes again
from scratch (one more bake, from the cached base) and fails with kiln diff's
report when the images differ; see docs/reproducible.md.

Package locks: --lock writes <recipe>.lock beside the recipe (web.yaml ->
web.lock): the exact package set and the state of the archive it came from.
Every later bake of the recipe installs exactly those versions, and fails
naming the packages the mirror no longer has. kiln lock update refreshes it;
--mirror and --security-mirror point at a snapshot mirror that keeps an old
lock buildable.`,
		Example: `  kiln bake examples/app-host.yaml                 # -> app-host.qcow2 + app-host.manifest.json
  kiln bake web.yaml -o out/web.qcow2 --output json
  kiln bake web.yaml --push registry.example.com/team/web:1.2 --sign kiln.key
  kiln bake web.yaml --check-reproducible          # bake twice, fail unless the bytes match`,
		Args: exactArgs(1),
		RunE: bakeAction,
	}
	cmd.Flags().StringP("out", "o", "", "image to write (default: <recipe name>.qcow2, or .raw)")
	addBuilderFlags(cmd)
	cmd.Flags().Bool("no-cache", false, "rebuild the image even when an identical one is cached")
	cmd.Flags().Bool("lock", false, "write the image's package set to <recipe>.lock beside the recipe, if it has none: later bakes install exactly those versions")
	cmd.Flags().Bool("check-reproducible", false, "bake a second time from scratch and fail, with kiln diff's report, unless both images are the same bytes")
	cmd.Flags().Bool("keep-workdir", false, "keep the baked tree and raw disk in the cache's kept/ directory, for debugging")
	cmd.Flags().Duration("bake-timeout", builder.DefaultBakeTimeout, "how long a VM bake (image bases) may take")
	cmd.Flags().String("push", "", "after the bake, publish the image to this reference (see kiln push --help)")
	addPushFlags(cmd, "push-format")
	cmd.Flags().Bool("insecure", false, "allow plain HTTP to the --push registry")
	return cmd
}

func addBuilderFlags(cmd *cobra.Command) {
	cmd.Flags().String("cache-dir", builder.DefaultCacheDir(), "where bases, images and packages are cached")
	cmd.Flags().String("mirror", "", "Debian mirror for package bases (default: the host's apt sources)")
	cmd.Flags().String("mirror-keyring", "", "OpenPGP keyring (.gpg or .asc) that signs --mirror, trusted besides the host's apt keys")
	cmd.Flags().String("security-mirror", "", "mirror of Debian's security archive for package bases (default: the host's apt sources'; none: leave it out)")
}

// buildEpoch is the build's SOURCE_DATE_EPOCH; a value that is set but
// invalid is a usage error, never silently replaced.
func buildEpoch() (time.Time, error) {
	t, err := epoch.FromEnv()
	if err != nil {
		return time.Time{}, usageError{err}
	}
	return t, nil
}

func newBuilder(cmd *cobra.Command, change ...func(*builder.Options)) (*builder.Builder, error) {
	// Unset, the builder derives each image's epoch from its packages.
	when, err := epoch.Lookup()
	if err != nil {
		return nil, usageError{err}
	}
	opts := builder.Options{
		Epoch:          when,
		CacheDir:       cfg.GetString("cache-dir"),
		Mirror:         cfg.GetString("mirror"),
		SecurityMirror: cfg.GetString("security-mirror"),
		MirrorKeyring:  cfg.GetString("mirror-keyring"),
		NoCache:        cfg.GetBool("no-cache"),
		KeepWorkDir:    cfg.GetBool("keep-workdir"),
		BakeTimeout:    cfg.GetDuration("bake-timeout"),
		Progress:       newRenderer(cmd.ErrOrStderr()),
	}
	for _, c := range change {
		c(&opts)
	}
	return builder.New(opts), nil
}

// withLock pins a bake to the recipe's package lock, when it has one.
func withLock(recipe string) (func(*builder.Options), string, error) {
	path := manifest.LockPath(recipe)
	l, sum, err := manifest.ReadLock(path)
	if errors.Is(err, os.ErrNotExist) {
		return func(*builder.Options) {}, "", nil
	}
	if err != nil {
		return nil, "", invalidInput{err}
	}
	return func(o *builder.Options) { o.Lock, o.LockFile, o.LockDigest = l, path, sum }, path, nil
}

func bakeAction(cmd *cobra.Command, args []string) error {
	plan, err := recipes.LoadPlan(args[0])
	if err != nil {
		return err
	}
	out := cfg.GetString("out")
	if out == "" {
		out = plan.Recipe.Name + "." + plan.Recipe.Disk.Format
	}
	if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	var pushRef registry.Ref
	if p := cfg.GetString("push"); p != "" {
		// A bad reference fails before the bake, not after it.
		if pushRef, err = parseRef(p); err != nil {
			return err
		}
		if _, err := registry.ParseFormat(cfg.GetString("push-format")); err != nil {
			return usageError{err}
		}
	}
	if cfg.GetBool("lock") {
		if err := lockable(plan); err != nil {
			return err
		}
	}
	locked, lockPath, err := withLock(args[0])
	if err != nil {
		return err
	}
	b, err := newBuilder(cmd, locked)
	if err != nil {
		return err
	}
	res, err := b.Bake(cmd.Context(), plan, out)
	if err != nil {
		return err
	}
	// --lock writes a lock only where there is none: a locked bake held
	// to the one there.
	written := ""
	if lockPath == "" && cfg.GetBool("lock") {
		written = manifest.LockPath(args[0])
		if err := manifest.WriteLock(written, manifest.NewLock(res.Info)); err != nil {
			return fmt.Errorf("baked %s, but: %w", res.Image, err)
		}
	}
	var repro *builder.Reproducibility
	if cfg.GetBool("check-reproducible") {
		// Checked before anything is published.
		if repro, err = checkReproducible(cmd, b, plan, res); err != nil {
			if repro != nil && jsonOutput() {
				return printFailure(cmd, map[string]any{"image": res.Image, "manifest": res.Manifest, "sha256": res.Info.Artifacts[0].SHA256,
					"reproducible": repro}, err, exitFailure)
			}
			return err
		}
	}
	var pushed *registry.PushResult
	if pushRef.String() != "" {
		if pushed, err = push(cmd, res.Image, pushRef, cfg.GetString("push-format")); err != nil {
			return fmt.Errorf("baked %s, but: %w", res.Image, err)
		}
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"image": res.Image, "manifest": res.Manifest,
			"cached": res.Cached, "key": res.Key, "sha256": res.Info.Artifacts[0].SHA256, "size": res.Info.Artifacts[0].Size,
			"pushed": pushed, "reproducible": repro, "lock": res.Info.Recipe.Lock, "lockWritten": written})
	}
	how := "baked"
	if res.Cached {
		how = "unchanged, reused from cache"
	}
	a := res.Info.Artifacts[0]
	fmt.Fprintf(cmd.OutOrStdout(), "%s (%s)\n  image     %s (%d MiB, %s)\n  manifest  %s\n  packages  %d, kernel %s, cloud-init %s\n",
		plan.Recipe.Name, how, res.Image, a.Size>>20, strings.TrimPrefix(a.SHA256, "sha256:")[:16], res.Manifest,
		len(res.Info.Packages), res.Info.OS.Kernel, res.Info.OS.CloudInit)
	if lockPath != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "  locked    %s (%d packages, exactly)\n", lockPath, len(res.Info.Packages))
	} else if written != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "  lock      %s written (%d packages); later bakes install exactly these\n", written, len(res.Info.Packages))
	}
	if repro != nil {
		fmt.Fprintf(cmd.OutOrStdout(), "  reproducible: a second bake from scratch gave the same bytes\n")
	}
	if pushed != nil {
		return printPushed(cmd, pushed)
	}
	return nil
}

// checkReproducible bakes the recipe a second time from scratch and fails
// with kiln diff's report when the two images are not the same bytes.
func checkReproducible(cmd *cobra.Command, b *builder.Builder, plan *recipes.Plan, res *builder.Result) (*builder.Reproducibility, error) {
	r, err := b.CheckReproducible(cmd.Context(), plan, res)
	if err != nil {
		return nil, err
	}
	if r.Same {
		return r, nil
	}
	if !jsonOutput() {
		printDiff(cmd.OutOrStdout(), r.Diff)
	}
	what := "the filesystems' metadata differs, but no file, owner, mode or package (compare the bytes with cmp -l)"
	if !r.Diff.Empty() {
		what = fmt.Sprintf("packages differing: %d, files: %d (listed above)", len(r.Diff.Packages), len(r.Diff.Files))
	}
	return r, fmt.Errorf("not reproducible: a second bake of %s from scratch gave %s, not %s: %s; the second image is kept at %s",
		plan.Recipe.Name, shortDigest(r.Rebuilt), shortDigest(r.Digest), what, r.Second)
}
