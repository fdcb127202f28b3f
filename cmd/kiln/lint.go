package main

import (
	"errors"
	"fmt"

	"github.com/kiln-project/kiln/lint"
	"github.com/spf13/cobra"
)

func newLintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "lint IMAGE...",
		Short: "Check images offline for hygiene violations",
		Long: `Opens each image (qcow2 or raw) in kiln itself — no VM, no mounts — finds its
Linux root filesystem and reports every hygiene violation by rule name:

` + ruleList() + `
Exits 1 when any image has a violation. kiln's own images lint clean.`,
		Example: `  kiln lint web.qcow2
  kiln lint --output json debian-12-genericcloud-amd64.qcow2`,
		Args: minArgs(1),
		RunE: lintAction,
	}
}

func ruleList() string {
	s := ""
	for _, r := range lint.Rules {
		s += fmt.Sprintf("  %-17s %s\n", r.Name, r.Description)
	}
	return s + fmt.Sprintf("  %-17s %s\n", lint.FreeSpaceRule, "free filesystem space holds no old data (it was discarded)")
}

func lintAction(cmd *cobra.Command, args []string) error {
	var reports []*lint.Report
	dirty := 0
	for _, p := range args {
		rep, err := lint.Image(cmd.Context(), p)
		if err != nil {
			return usageError{err}
		}
		reports = append(reports, rep)
		if !rep.Clean() {
			dirty++
		}
		if !jsonOutput() {
			if rep.Clean() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: clean (%s, %d rules)\n", p, rep.OS, len(rep.Rules))
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d violations (%s)\n", p, len(rep.Violations), rep.OS)
			for _, v := range rep.Violations {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", v)
			}
		}
	}
	if jsonOutput() {
		if err := printJSON(cmd.OutOrStdout(), reports); err != nil {
			return err
		}
	}
	if dirty > 0 {
		return silentFailure{errors.New("lint found violations")}
	}
	return nil
}
