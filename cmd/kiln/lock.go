package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/builder"
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
  kiln lock update web.yaml --mirror https://snapshot.example.com/debian/20261101T000000Z`,
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
	var changes []manifest.PackageDrift
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
	printLockChanges(w, old, changes)
	return nil
}

// lockChanges lists the packages two locks disagree on: Want is the old
// version ("" for a new package), Got the new one ("" for one removed).
func lockChanges(old, new *manifest.Lock) []manifest.PackageDrift {
	var out []manifest.PackageDrift
	d := old.Drift(new.Packages)
	out = append(out, d.Changed...)
	for _, p := range d.Unlocked {
		out = append(out, manifest.PackageDrift{Name: p.Name, Arch: p.Arch, Got: p.Version})
	}
	for _, p := range d.Missing {
		out = append(out, manifest.PackageDrift{Name: p.Name, Arch: p.Arch, Want: p.Version})
	}
	return out
}

func printLockChanges(w io.Writer, old *manifest.Lock, changes []manifest.PackageDrift) {
	switch {
	case old == nil:
		fmt.Fprintln(w, "  (a new lock)")
	case len(changes) == 0:
		fmt.Fprintln(w, "  no package changed")
	}
	for _, c := range changes {
		switch {
		case c.Want == "":
			fmt.Fprintf(w, "+ %s %s (%s)\n", c.Name, c.Got, c.Arch)
		case c.Got == "":
			fmt.Fprintf(w, "- %s %s (%s)\n", c.Name, c.Want, c.Arch)
		default:
			fmt.Fprintf(w, "~ %s %s -> %s (%s)\n", c.Name, c.Want, c.Got, c.Arch)
		}
	}
}
