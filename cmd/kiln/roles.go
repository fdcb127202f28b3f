package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kiln-project/kiln/recipes"
	"github.com/spf13/cobra"
)

func newRolesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "roles [ROLE]",
		Short: "List the built-in roles with their parameters, defaults and software versions",
		Long: `Lists the built-in roles: what each does, the software it brings with the
version each supported Debian release ships (a recipe's base chooses the
release; the parameters are the same on every release), and its parameters
with their types and defaults.`,
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
		return printResult(cmd, map[string]any{"roles": roles, "releases": recipes.Releases(), "baseSoftware": recipes.BaseSoftware()})
	}
	w := cmd.OutOrStdout()
	if len(args) == 0 {
		fmt.Fprintf(w, "Debian releases: %s\n\nevery image\n", releaseLine())
		softwareTable(w, recipes.BaseSoftware())
		fmt.Fprintln(w)
	}
	for i, r := range roles {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s\n  %s\n\n", r.Name, r.Summary)
		if len(r.Software) > 0 {
			softwareTable(w, r.Software)
			fmt.Fprintln(w)
		}
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

// releaseLine names the supported releases: "debian:trixie (13, stable,
// the default), debian:bookworm (12, oldstable)".
func releaseLine() string {
	var parts []string
	for _, r := range recipes.Releases() {
		p := fmt.Sprintf("debian:%s (%s, %s", r.Codename, r.Version, r.Alias)
		if r.Default {
			p += ", the default"
		}
		parts = append(parts, p+")")
	}
	return strings.Join(parts, ", ")
}

// softwareTable prints software with one column of versions per release.
func softwareTable(w io.Writer, sw []recipes.RoleSoftware) {
	rels := recipes.Releases()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "  SOFTWARE")
	for _, r := range rels {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(r.Codename))
	}
	fmt.Fprintln(tw)
	for _, s := range sw {
		fmt.Fprintf(tw, "  %s", s.Name)
		for _, r := range rels {
			fmt.Fprintf(tw, "\t%s", s.Versions[r.Codename])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
