package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/disk/imagediff"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

func newLockCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Manage package locks: the exact package set a recipe's image is baked with",
		Long: `A package lock (<recipe>.lock beside the recipe, written by kiln bake --lock)
pins every package of the image to a version, and records the Release files
of the apt sources it came from. While it exists, kiln bake installs exactly
those versions, and fails naming each package the mirror no longer offers at
its locked version. Commit it beside the recipe. See docs/reproducible.md.`,
		Args: exactArgs(0),
	}
	cmd.AddCommand(newLockUpdateCommand())
	return cmd
}

func newLockUpdateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update RECIPE",
		Short: "Lock a recipe to the packages its mirror offers today",
		Long: `Rebuilds the recipe's package base from the mirror as it is now (the cached
base is replaced), bakes the recipe without its old lock, and writes the new
package set to <recipe>.lock. It prints what changed: packages added,
removed and moved to another version. The image itself is not kept; bake it
with kiln bake, which then installs exactly the locked set.`,
		Example: `  kiln lock update web.yaml                         # web.lock: today's versions
  kiln lock update web.yaml --mirror "$SNAPSHOT_MIRROR"   # a snapshot mirror's URL, from your configuration`,
		Args: exactArgs(1),
		RunE: lockUpdateAction,
	}
	addBuilderFlags(cmd)
	return cmd
}

func lockUpdateAction(cmd *cobra.Command, args []string) error {
	plan, err := recipes.LoadPlan(args[0])
	if err != nil {
		return err
	}
	if err := lockable(plan); err != nil {
		return err
	}
	path := manifest.LockPath(args[0])
	old, _, err := manifest.ReadLock(path)
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(cmd.ErrOrStderr(), "kiln: replacing %s, which does not read: %v\n", path, err)
	}
	b, err := newBuilder(cmd, func(o *builder.Options) { o.RefreshBase, o.NoCache = true, true })
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kiln-lock-update-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res, err := b.Bake(cmd.Context(), plan, filepath.Join(dir, plan.Recipe.Name+"."+plan.Recipe.Disk.Format))
	if err != nil {
		return err
	}
	lock := manifest.NewLock(res.Info)
	if err := manifest.WriteLock(path, lock); err != nil {
		return err
	}
	var changes []imagediff.PackageChange
	if old != nil {
		changes = lockChanges(old, lock)
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"lock": path, "packages": len(lock.Packages), "releases": lock.Releases, "changes": changes})
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: %d packages, from", path, len(lock.Packages))
	for _, r := range lock.Releases {
		fmt.Fprintf(w, " %s (%s)", r.Suite, r.Date)
	}
	fmt.Fprintln(w)
	switch {
	case old == nil:
		fmt.Fprintln(w, "  (a new lock)")
	case len(changes) == 0:
		fmt.Fprintln(w, "  no package changed")
	}
	printPackageChanges(w, changes)
	return nil
}

// lockable refuses a lock for a recipe baked in a VM: locks pin offline
// bakes of package bases.
func lockable(plan *recipes.Plan) error {
	base, err := recipes.ParseBase(plan.Recipe.Base)
	if err != nil {
		return err
	}
	if base.Kind != recipes.BasePackages || plan.Recipe.Bake.Mode == "vm" {
		return usageError{fmt.Errorf("%s is baked in a VM (base %s, bake.mode %s): package locks pin offline bakes of package bases (debian:<suite>)",
			plan.Recipe.Name, plan.Recipe.Base, plan.Recipe.Bake.Mode)}
	}
	return nil
}

// lockChanges lists the packages two locks disagree on, as kiln diff
// reports packages.
func lockChanges(old, new *manifest.Lock) []imagediff.PackageChange {
	var out []imagediff.PackageChange
	d := old.Drift(new.Packages)
	for _, c := range d.Changed {
		out = append(out, imagediff.PackageChange{Name: c.Name, Arch: c.Arch, From: c.Want, To: c.Got})
	}
	for _, p := range d.Unlocked {
		out = append(out, imagediff.PackageChange{Name: p.Name, Arch: p.Arch, To: p.Version})
	}
	for _, p := range d.Missing {
		out = append(out, imagediff.PackageChange{Name: p.Name, Arch: p.Arch, From: p.Version})
	}
	return out
}
