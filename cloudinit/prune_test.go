package cloudinit

import (
	"bytes"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestModuleShape pins what compiling only the modules a document uses
// relies on: every allOf member of the cloud-config schema is a definition
// that constrains only its own top-level properties. A schema update that
// breaks this fails here, not silently in validation.
func TestModuleShape(t *testing.T) {
	for _, s := range []*Schema{Upstream, Debian12} {
		if err := s.load(); err != nil {
			t.Fatal(err)
		}
		defs, _ := s.root["$defs"].(map[string]any)
		for _, m := range s.modules {
			ref, _ := m.item.(map[string]any)["$ref"].(string)
			def, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			if !ok || len(m.item.(map[string]any)) != 1 {
				t.Errorf("%s: allOf member %v is not a plain $ref to a definition", s.Version, m.item)
				continue
			}
			for k, v := range def {
				switch k {
				case "properties", "description", "title", "$comment":
				case "type":
					if v != "object" {
						t.Errorf("%s: %s has type %v", s.Version, ref, v)
					}
				case "additionalProperties":
					if v == false {
						t.Errorf("%s: %s refuses other modules' keys", s.Version, ref)
					}
				default:
					t.Errorf("%s: %s has %q beside its properties: it may constrain documents without its keys", s.Version, ref, k)
				}
			}
		}
	}
}

// TestPrunedMatchesFull: validating with the modules a document uses gives
// exactly the problems the whole schema gives, on documents made from the
// schema's own keys — each key alone and next to another, with values of
// every JSON type — and on documents with unknown keys.
func TestPrunedMatchesFull(t *testing.T) {
	for _, s := range []*Schema{Upstream, Debian12} {
		if err := s.load(); err != nil {
			t.Fatal(err)
		}
		full := compileFull(t, s)
		var keys []string
		for k := range s.topKeys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		values := []any{1, "x", true, []any{1}, []any{"a"}, []any{map[string]any{"name": "a"}}, map[string]any{"a": 1}, map[string]any{}, nil}
		var docs []map[string]any
		for i, k := range keys {
			for _, v := range values {
				docs = append(docs, map[string]any{k: v})
				docs = append(docs, map[string]any{k: v, keys[(i*7+3)%len(keys)]: "x", "not_a_key": 1})
			}
		}
		if len(docs) < 500 {
			t.Fatalf("%s: only %d documents", s.Version, len(docs))
		}
		for _, doc := range docs {
			b, _ := yaml.Marshal(doc)
			userData := append([]byte(Header), b...)
			got, err := s.ValidateUserData(userData)
			if err != nil {
				t.Fatal(err)
			}
			inst, _ := instance(userData)
			want := problems(full.Validate(inst))
			if !sameProblems(got, want) {
				t.Errorf("%s: %s\npruned: %v\nfull:   %v", s.Version, b, got, want)
			}
		}
	}
}

func compileFull(t *testing.T, s *Schema) *jsonschema.Schema {
	t.Helper()
	b, err := schemaFS.ReadFile(path.Join(s.dir, "schema-cloud-config-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AddResource("full.json", doc)
	sch, err := c.Compile("full.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func sameProblems(a, b []Problem) bool {
	key := func(ps []Problem) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = fmt.Sprint(p)
		}
		sort.Strings(out)
		return out
	}
	return reflect.DeepEqual(key(a), key(b))
}
