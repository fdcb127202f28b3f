package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated sections of docs/packer.md")

// section is a generated part of docs/packer.md: the docs partial it
// holds, between its BEGIN and END markers.
var section = regexp.MustCompile(`(?s)(<!-- BEGIN (\S+\.mdx)[^\n]*-->\n)(.*?)(<!-- END -->)`)

// TestDocs keeps the configuration references in docs/packer.md equal to
// the partials packer-sdc generates from the Config comments (TestGenerated
// keeps those current); -update rewrites them.
func TestDocs(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "packer.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seen := 0
	var errs []string
	out := section.ReplaceAllStringFunc(doc, func(m string) string {
		g := section.FindStringSubmatch(m)
		seen++
		p, err := os.ReadFile(filepath.Join("docs-partials", g[2]))
		if err != nil {
			errs = append(errs, err.Error())
			return m
		}
		var keep []string
		for _, l := range strings.Split(string(p), "\n") {
			if !strings.HasPrefix(l, "<!-- ") {
				keep = append(keep, l)
			}
		}
		body := strings.TrimSpace(strings.Join(keep, "\n")) + "\n"
		return g[1] + body + g[4]
	})
	for _, e := range errs {
		t.Error(e)
	}
	if seen == 0 {
		t.Fatal("docs/packer.md has no generated sections")
	}
	if out == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/packer.md is stale: run go test . -run TestDocs -update in cmd/packer-plugin-kiln")
}
