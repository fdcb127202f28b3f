package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/kiln-project/kiln/recipes"
	"github.com/spf13/cobra"
)

func newRolesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "roles [ROLE]",
		Short: "List the built-in roles with their parameters and defaults",
		Example: `  kiln roles
  kiln roles database
  kiln roles --output json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("give at most one role name")}
			}
			return nil
		},
		RunE: rolesAction,
	}
}

func rolesAction(cmd *cobra.Command, args []string) error {
	roles := recipes.Roles()
	if len(args) == 1 {
		ri, ok := recipes.DescribeRole(args[0])
		if !ok {
			return usageError{fmt.Errorf("unknown role %q; built-in roles: %s", args[0], strings.Join(recipes.RoleNames(), ", "))}
		}
		roles = []recipes.RoleInfo{ri}
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"roles": roles})
	}
	w := cmd.OutOrStdout()
	for i, r := range roles {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s\n  %s\n\n", r.Name, r.Summary)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PARAMETER\tTYPE\tDEFAULT\tDESCRIPTION")
		for _, p := range r.Params {
			def := p.Default
			if def == "" {
				def = "-"
			}
			if len(def) > 44 {
				def = def[:40] + " ..." // the whole value: kiln roles --output json
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Type, strings.ReplaceAll(def, "\n", " "), p.Doc)
		}
		tw.Flush()
	}
	return nil
}
