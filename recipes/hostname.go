package recipes

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
)

var hostnameRE = lazyre.New(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ExpandHostname fills a hostname pattern: {recipe} is the recipe name,
// {instance} the instance name, {index} its number. The result must be a
// valid host name (one DNS label).
func ExpandHostname(pattern, recipe, instance string, index int) (string, error) {
	var bad []string
	out := regexp.MustCompile(`\{[^}]*\}`).ReplaceAllStringFunc(pattern, func(m string) string {
		switch m {
		case "{recipe}":
			return recipe
		case "{instance}":
			return instance
		case "{index}":
			return strconv.Itoa(index)
		}
		bad = append(bad, m)
		return m
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown placeholder %s in hostname %q (use {recipe}, {instance} or {index})", strings.Join(bad, ", "), pattern)
	}
	out = strings.ToLower(out)
	if !hostnameRE.MatchString(out) {
		return "", fmt.Errorf("hostname %q (from %q) is not a valid host name: lower-case letters, digits and dashes, at most 63", out, pattern)
	}
	return out, nil
}
