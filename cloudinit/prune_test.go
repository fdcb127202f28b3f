package cloudinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/xeipuuv/gojsonschema"
	"gopkg.in/yaml.v3"
)

// fullSchema reads a whole cloud-config schema file, as cloud-init ships it.
func fullSchema(t *testing.T, s *Schema) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "schema-cloud-config-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestModuleShape pins what compiling only the modules a document uses
// relies on: every allOf member of the cloud-config schema is a definition
// that constrains only its own top-level properties. A schema update that
// breaks this fails here, not silently in validation.
func TestModuleShape(t *testing.T) {
	for _, s := range []*Schema{Upstream, Debian12} {
		full := fullSchema(t, s)
		defs, _ := full["$defs"].(map[string]any)
		all, _ := full["allOf"].([]any)
		if len(all) < 30 {
			t.Fatalf("%s: %d modules", s.Version, len(all))
		}
		for _, item := range all {
			m, _ := item.(map[string]any)
			ref, _ := m["$ref"].(string)
			def, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			if !ok || len(m) != 1 {
				t.Errorf("%s: allOf member %v is not a plain $ref to a definition", s.Version, item)
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
// every JSON type — and on documents with unknown keys. A second JSON
// Schema library, github.com/santhosh-tekuri/jsonschema, gives the same
// verdict on each (valid or not, and at which top-level keys).
func TestPrunedMatchesFull(t *testing.T) {
	for _, s := range []*Schema{Upstream, Debian12} {
		if err := s.load(); err != nil {
			t.Fatal(err)
		}
		full, err := gojsonschema.NewSchema(gojsonschema.NewGoLoader(fullSchema(t, s)))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		c.AddResource("full.json", fullSchema(t, s))
		other, err := c.Compile("full.json")
		if err != nil {
			t.Fatal(err)
		}
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
			want, err := validate(full, inst)
			if err != nil {
				t.Fatal(err)
			}
			if !sameProblems(got, want) {
				t.Errorf("%s: %s\npruned: %v\nfull:   %v", s.Version, b, got, want)
			}
			if a, b2 := topOf(got), otherTop(other, inst); a != b2 {
				t.Errorf("%s: %s\nkiln's library finds problems at %q, the other at %q", s.Version, b, a, b2)
			}
		}
	}
}

// topOf is the sorted top-level keys problems are at ("" for the root).
func topOf(ps []Problem) string {
	set := map[string]bool{}
	for _, p := range ps {
		k, _, _ := strings.Cut(strings.TrimPrefix(p.Pointer, "/"), "/")
		set[k] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// otherTop is topOf for the second library's verdict.
func otherTop(s *jsonschema.Schema, inst any) string {
	var ve *jsonschema.ValidationError
	if err := s.Validate(inst); !errors.As(err, &ve) {
		return ""
	}
	set := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			k := ""
			if len(e.InstanceLocation) > 0 {
				k = e.InstanceLocation[0]
			}
			set[k] = true
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
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

// TestSplitSchemasFresh: the embedded split schemas are what
// internal/schemasplit makes of the schema files (run go generate
// ./cloudinit after changing them).
func TestSplitSchemasFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run")
	}
	for _, dir := range []string{Upstream.dir, Debian12.dir} {
		tmp := filepath.Join(t.TempDir(), filepath.Base(dir))
		os.MkdirAll(tmp, 0o755)
		b, err := os.ReadFile(filepath.Join(dir, "schema-cloud-config-v1.json"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, "schema-cloud-config-v1.json"), b, 0o644)
		if out, err := exec.Command("go", "run", "./internal/schemasplit", tmp).CombinedOutput(); err != nil {
			t.Fatalf("schemasplit: %v\n%s", err, out)
		}
		want, _ := filepath.Glob(filepath.Join(tmp, "split", "*.json"))
		have, _ := filepath.Glob(filepath.Join(dir, "split", "*.json"))
		if len(want) != len(have) {
			t.Errorf("%s/split has %d files, schemasplit makes %d: run go generate ./cloudinit", dir, len(have), len(want))
		}
		for _, w := range want {
			a, _ := os.ReadFile(w)
			h, _ := os.ReadFile(filepath.Join(dir, "split", filepath.Base(w)))
			if !bytes.Equal(a, h) {
				t.Errorf("%s/split/%s is stale: run go generate ./cloudinit", dir, filepath.Base(w))
			}
		}
	}
}
