package recipes

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// assets holds the scripts and templates roles install; they are real files
// so they can be read, linted and diffed as what they are.
//
//go:embed assets
var assets embed.FS

func asset(name string) string {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("recipes: missing embedded asset " + name) // a build defect, caught by every test
	}
	return string(b)
}

// render fills an embedded template.
func render(name string, data any) (string, error) {
	t, err := template.New(name).Funcs(template.FuncMap{
		"exec":    execLine,
		"seconds": func(d Duration) int64 { return int64(d.D() / time.Second) },
		"join":    strings.Join,
	}).Parse(asset(name))
	if err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	return b.String(), nil
}

// execLine renders a command for ExecStart=: argv words quoted for systemd,
// shell strings run by /bin/sh -c. "$" and "%" are escaped so systemd passes
// them through instead of expanding them.
func execLine(c Command) string {
	if c.Argv == nil {
		return "/bin/sh -c " + systemdQuote(c.Shell)
	}
	words := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		words[i] = systemdQuote(a)
	}
	return strings.Join(words, " ")
}

func systemdQuote(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(s) + `"`
}

// envFile renders KEY=value lines for an EnvironmentFile, values quoted.
func envFile(env map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(env) {
		fmt.Fprintf(&b, "%s=%s\n", k, envQuote(env[k]))
	}
	return b.String()
}

func envQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "$", `\$`, "`", "\\`").Replace(v) + `"`
}
