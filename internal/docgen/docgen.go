// Package docgen renders reference tables into the Markdown docs, between
// markers, from the code that defines what kiln accepts: the recipe fields
// in docs/recipes.md, every role's parameters in docs/roles.md, and the
// software versions each supported Debian release brings, per role and for
// every image (software:base).
//
//	<!-- params:app-host -->
//	(generated table)
//	<!-- end params -->
//	<!-- software:database -->
//	(generated table)
//	<!-- end software -->
package docgen

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/recipes"
)

var (
	block         = regexp.MustCompile(`(?s)<!-- params:([a-z-]+) -->\n.*?<!-- end params -->`)
	softwareBlock = regexp.MustCompile(`(?s)<!-- software:([a-z-]+) -->\n.*?<!-- end software -->`)
)

// Files are the docs with generated tables, relative to the repository root.
var Files = map[string]func(string) (string, error){
	"docs/roles.md":   UpdateRoles,
	"docs/recipes.md": UpdateRecipe,
	"docs/deploy.md":  UpdateDeploy,
}

// Root is the repository root the docs' example files are read from.
var Root = "."

var graphBlock = regexp.MustCompile("(?s)<!-- graph:([a-z./-]+) -->\n.*?<!-- end graph -->")

// UpdateDeploy regenerates the topology drawings of example fleets
// (marker graph:FILE): Mermaid, as kiln deploy graph draws it.
func UpdateDeploy(doc string) (string, error) {
	var errs []string
	out := graphBlock.ReplaceAllStringFunc(doc, func(m string) string {
		file := graphBlock.FindStringSubmatch(m)[1]
		f, err := deploy.LoadFleet(filepath.Join(Root, file))
		if err != nil {
			errs = append(errs, err.Error())
			return m
		}
		return "<!-- graph:" + file + " -->\n```mermaid\n" + deploy.PlannedTopology(f).Mermaid() + "```\n<!-- end graph -->"
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("docs/deploy.md: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// UpdateRecipe regenerates the recipe field table (marker params:recipe).
func UpdateRecipe(doc string) (string, error) {
	found := false
	out := block.ReplaceAllStringFunc(doc, func(m string) string {
		if block.FindStringSubmatch(m)[1] != "recipe" {
			return m
		}
		found = true
		return "<!-- params:recipe -->\n" + Table(recipes.RecipeInfo()) + "<!-- end params -->"
	})
	if !found {
		return "", fmt.Errorf("docs/recipes.md: no <!-- params:recipe --> table")
	}
	return out, nil
}

// UpdateRoles returns doc with every role's parameter table regenerated.
// Every role must have a table, and every table a role.
func UpdateRoles(doc string) (string, error) {
	seen := map[string]bool{}
	var errs []string
	out := block.ReplaceAllStringFunc(doc, func(m string) string {
		name := block.FindStringSubmatch(m)[1]
		ri, ok := recipes.DescribeRole(name)
		if !ok {
			errs = append(errs, fmt.Sprintf("table for unknown role %q", name))
			return m
		}
		seen[name] = true
		return "<!-- params:" + name + " -->\n" + Table(ri) + "<!-- end params -->"
	})
	for _, n := range recipes.RoleNames() {
		if !seen[n] {
			errs = append(errs, fmt.Sprintf("no <!-- params:%s --> table", n))
		}
	}
	seenSW := map[string]bool{}
	out = softwareBlock.ReplaceAllStringFunc(out, func(m string) string {
		name := softwareBlock.FindStringSubmatch(m)[1]
		sw := recipes.BaseSoftware()
		if name != "base" {
			ri, ok := recipes.DescribeRole(name)
			if !ok {
				errs = append(errs, fmt.Sprintf("software table for unknown role %q", name))
				return m
			}
			sw = ri.Software
		}
		seenSW[name] = true
		return "<!-- software:" + name + " -->\n" + SoftwareTable(sw) + "<!-- end software -->"
	})
	for _, ri := range append([]recipes.RoleInfo{{Name: "base", Software: recipes.BaseSoftware()}}, recipes.Roles()...) {
		if len(ri.Software) > 0 && !seenSW[ri.Name] {
			errs = append(errs, fmt.Sprintf("no <!-- software:%s --> table", ri.Name))
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("docs/roles.md: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Table renders one role's parameters as a Markdown table.
func Table(ri recipes.RoleInfo) string {
	var b strings.Builder
	b.WriteString("| parameter | type | default | description |\n|---|---|---|---|\n")
	for _, p := range ri.Params {
		def := "—"
		if p.Default != "" {
			def = "`" + p.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Name, p.Type, def, strings.ReplaceAll(p.Doc, "|", `\|`))
	}
	return b.String()
}

// SoftwareTable renders software with its version per supported release,
// one column per release, newest first.
func SoftwareTable(sw []recipes.RoleSoftware) string {
	var b strings.Builder
	rels := recipes.Releases()
	b.WriteString("| software |")
	for _, r := range rels {
		def := ""
		if r.Default {
			def = ", the default"
		}
		fmt.Fprintf(&b, " `debian:%s` (Debian %s, %s%s) |", r.Codename, r.Version, r.Alias, def)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(rels)) + "\n")
	for _, s := range sw {
		fmt.Fprintf(&b, "| %s (`%s`) |", s.Name, s.Package)
		for _, r := range rels {
			fmt.Fprintf(&b, " %s |", s.Versions[r.Codename])
		}
		b.WriteString("\n")
	}
	return b.String()
}
