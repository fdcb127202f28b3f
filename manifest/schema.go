package manifest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/xeipuuv/gojsonschema"
)

// SchemaJSON is the JSON Schema of the current layout.
//
//go:embed schema/manifest-v1.json
var SchemaJSON []byte

var compiled = sync.OnceValues(func() (*gojsonschema.Schema, error) {
	return gojsonschema.NewSchema(gojsonschema.NewBytesLoader(SchemaJSON))
})

// Validate checks manifest JSON against the schema (with
// github.com/xeipuuv/gojsonschema) and returns every problem, one per
// line, each naming its JSON pointer.
func Validate(b []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("manifest schema: %w", err) // a build defect, caught by every test
	}
	if !json.Valid(b) {
		return errors.New("not JSON")
	}
	res, err := s.Validate(gojsonschema.NewBytesLoader(b))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if res.Valid() {
		return nil
	}
	var lines []string
	for _, e := range res.Errors() {
		lines = append(lines, fmt.Sprintf("%s: %s", orRoot(pointer(e.Context())), e.Description()))
	}
	sort.Strings(lines)
	lines = compact(lines)
	return fmt.Errorf("does not match the manifest schema (schemaVersion %d):\n  %s", SchemaVersion, strings.Join(lines, "\n  "))
}

// pointer turns gojsonschema's context, (root).checks.0, into /checks/0.
func pointer(c *gojsonschema.JsonContext) string {
	if c == nil {
		return ""
	}
	parts := strings.Split(c.String("\x00"), "\x00")[1:]
	if len(parts) == 0 {
		return ""
	}
	return "/" + strings.Join(parts, "/")
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// fields lists every property the schema defines, as JSON pointers with
// "*" for array items: for the test that keeps docs/manifest.md complete.
func fields() ([]string, error) {
	var doc map[string]any
	if err := json.Unmarshal(SchemaJSON, &doc); err != nil {
		return nil, err
	}
	defs, _ := doc["definitions"].(map[string]any)
	var out []string
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		if ref, ok := node["$ref"].(string); ok {
			if d, ok := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any); ok {
				walk(prefix, d)
			}
			return
		}
		if items, ok := node["items"].(map[string]any); ok {
			walk(prefix+"/*", items)
		}
		props, _ := node["properties"].(map[string]any)
		for k, v := range props {
			out = append(out, prefix+"/"+k)
			if m, ok := v.(map[string]any); ok {
				walk(prefix+"/"+k, m)
			}
		}
	}
	walk("", doc)
	sort.Strings(out)
	return out, nil
}
