// Package docgen renders reference tables into the Markdown docs, between
// markers, from the code that defines what kiln accepts: the recipe fields
// in docs/recipes.md and every role's parameters in docs/roles.md.
//
//	<!-- params:app-host -->
//	(generated table)
//	<!-- end params -->
package docgen

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kiln-project/kiln/recipes"
)

var block = regexp.MustCompile(`(?s)<!-- params:([a-z-]+) -->\n.*?<!-- end params -->`)

// Files are the docs with generated tables, relative to the repository root.
var Files = map[string]func(string) (string, error){
	"docs/roles.md":   UpdateRoles,
	"docs/recipes.md": UpdateRecipe,
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
