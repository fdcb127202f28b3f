package manifest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaJSON is the JSON Schema of the current layout.
//
//go:embed schema/manifest-v1.json
var SchemaJSON []byte

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("manifest-v1.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("manifest-v1.json")
})

// Validate checks manifest JSON against the schema and returns every
// problem, one per line, each naming its JSON pointer.
func Validate(b []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("manifest schema: %w", err) // a build defect, caught by every test
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	err = s.Validate(inst)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var lines []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out := e.BasicOutput()
			for _, u := range out.Errors {
				if u.Error != nil && len(u.Errors) == 0 {
					lines = append(lines, fmt.Sprintf("%s: %s", orRoot(u.InstanceLocation), u.Error.String()))
				}
			}
			if len(out.Errors) == 0 && out.Error != nil {
				lines = append(lines, fmt.Sprintf("%s: %s", orRoot(out.InstanceLocation), out.Error.String()))
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(lines)
	lines = compact(lines)
	if len(lines) == 0 {
		lines = []string{ve.Error()}
	}
	return fmt.Errorf("does not match the manifest schema (schemaVersion %d):\n  %s", SchemaVersion, strings.Join(lines, "\n  "))
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
	defs, _ := doc["$defs"].(map[string]any)
	var out []string
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		if ref, ok := node["$ref"].(string); ok {
			if d, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any); ok {
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
