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
		Short: "List or prune kiln's build cache (bases, images, packages)",
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List cached bases, images and packages",
		Args:  exactArgs(0),
		RunE:  cacheLsAction,
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached entries",
		Long: `Removes cache entries not used for --older-than (all of them when it is 0),
and work directories left by interrupted builds. Entries in use by a running
build are kept.`,
		Example: `  kiln cache prune --older-than 168h
  kiln cache prune`,
		Args: exactArgs(0),
		RunE: cachePruneAction,
	}
	prune.Flags().Duration("older-than", 0, "only entries unused for this long (0: everything)")
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
		return printJSON(cmd.OutOrStdout(), entries)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tKEY\tSIZE\tUSED\tINFO")
	var total int64
	for _, e := range entries {
		total += e.Size
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, e.Key, humanSize(e.Size), e.ModTime.Format(time.DateTime), e.Info)
	}
	tw.Flush()
	fmt.Fprintf(cmd.OutOrStdout(), "%d entries, %s in %s\n", len(entries), humanSize(total), c.Dir)
	return nil
}

func cachePruneAction(cmd *cobra.Command, args []string) error {
	c := &builder.Cache{Dir: cfg.GetString("cache-dir")}
	removed, err := c.Prune(cfg.GetDuration("older-than"))
	if err != nil {
		return err
	}
	if jsonOutput() {
		return printJSON(cmd.OutOrStdout(), map[string]any{"removed": removed})
	}
	var total int64
	for _, e := range removed {
		total += e.Size
		fmt.Fprintf(cmd.OutOrStdout(), "removed %s %s (%s)\n", e.Kind, e.Key, humanSize(e.Size))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "freed %s\n", humanSize(total))
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
