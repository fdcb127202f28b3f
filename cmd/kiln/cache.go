package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/spf13/cobra"
)

func newCacheCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List or prune kiln's cache (bases, images, packages, registry blobs)",
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List cached bases, images, packages and registry blobs",
		Args:  exactArgs(0),
		RunE:  cacheLsAction,
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove cache entries that have not been used for a while",
		Long: `Removes cache entries (bases, images, downloads, packages, registry blobs,
interrupted pulls, kept work directories) not used for --older-than (default 168h, a week), or every entry
with --all, and work directories left by killed builds. It lists what it
removes and how much space that frees; --dry-run lists without removing.

Entries a running kiln is building or using (a base being unpacked, the image
a VM bake boots from, the package cache during an install) are never removed:
they are listed as in use.`,
		Example: `  kiln cache prune                  # unused for a week
  kiln cache prune --older-than 24h
  kiln cache prune --all --dry-run`,
		Args: exactArgs(0),
		RunE: cachePruneAction,
	}
	prune.Flags().Duration("older-than", builder.DefaultPruneAge, "remove entries unused for at least this long")
	prune.Flags().Bool("all", false, "remove every entry that is not in use, whatever its age")
	prune.Flags().Bool("dry-run", false, "list what would be removed; remove nothing")
	for _, c := range []*cobra.Command{ls, prune} {
		c.Flags().String("cache-dir", builder.DefaultCacheDir(), "the cache directory")
		cmd.AddCommand(c)
	}
	return cmd
}

func cacheLsAction(cmd *cobra.Command, args []string) error {
	c := &builder.Cache{Dir: cfg.GetString("cache-dir")}
	entries, err := c.List()
	if err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"entries": entries})
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tKEY\tSIZE\tUSED\tINFO")
	var total int64
	for _, e := range entries {
		total += e.Size
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, e.Key, humanSize(e.Size), e.LastUsed.Format(time.DateTime), e.Info)
	}
	tw.Flush()
	fmt.Fprintf(cmd.OutOrStdout(), "%d entries, %s in %s\n", len(entries), humanSize(total), c.Dir)
	return nil
}

func cachePruneAction(cmd *cobra.Command, args []string) error {
	c := &builder.Cache{Dir: cfg.GetString("cache-dir")}
	if d := cfg.GetDuration("older-than"); d <= 0 {
		return usageError{fmt.Errorf("--older-than %s: want a positive age such as 24h (or --all)", d)}
	}
	dry := cfg.GetBool("dry-run")
	res, err := c.Prune(builder.PruneOptions{OlderThan: cfg.GetDuration("older-than"), All: cfg.GetBool("all"), DryRun: dry})
	if err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"dryRun": dry, "removed": res.Removed, "inUse": res.InUse, "freed": res.Freed, "stale": res.Stale})
	}
	w := cmd.OutOrStdout()
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	for _, e := range res.Removed {
		fmt.Fprintf(w, "%s %s %s (%s, last used %s)%s\n", verb, e.Kind, e.Key, humanSize(e.Size), e.LastUsed.Format(time.DateTime), suffix(e.Info))
	}
	for _, e := range res.InUse {
		fmt.Fprintf(w, "kept %s %s (%s): in use by a running kiln\n", e.Kind, e.Key, humanSize(e.Size))
	}
	if res.Stale > 0 {
		fmt.Fprintf(w, "removed work directories of killed builds (%s)\n", humanSize(res.Stale))
	}
	if dry {
		fmt.Fprintf(w, "would free %s (%d entries)\n", humanSize(res.Freed), len(res.Removed))
	} else {
		fmt.Fprintf(w, "freed %s (%d entries)\n", humanSize(res.Freed+res.Stale), len(res.Removed))
	}
	return nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
