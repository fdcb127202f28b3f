package cloudinit

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/xeipuuv/gojsonschema"
	"gopkg.in/yaml.v3"
)

// The schemas are embedded split per module (schemas/*/split, made from
// the schema files by internal/schemasplit): a document's validation reads
// and compiles only the root and the modules it uses.
//
//go:generate go run ./internal/schemasplit schemas/upstream-25.1 schemas/debian-22.4
//go:embed schemas/upstream-25.1/split/*.json schemas/debian-22.4/split/*.json schemas/upstream-25.1/schema-network-config-v2.json
var schemaFS embed.FS

// Schema is one cloud-init version's published schema set, validated with
// github.com/xeipuuv/gojsonschema (cloud-init's schemas are draft-04).
//
// Compiling the whole cloud-config schema costs tens of milliseconds, more
// than writing a seed: kiln compiles only what a document needs, when it
// is first validated. The schema is an allOf of one definition per
// cloud-init module, each of the form {type: object, properties: {...}}
// (TestModuleShape keeps it so), so a module none of whose keys a
// document has cannot fail it: the compiled schema keeps the root (its
// list of known keys, additionalProperties: false) and the modules whose
// keys the document uses (TestPrunedMatchesFull compares it with the whole
// schema, and with a second library). Compiled schemas are kept per module
// set.
type Schema struct {
	// Version is the cloud-init version the schema files came from.
	Version string
	dir     string

	once    sync.Once
	root    map[string]any // the cloud-config schema without its modules
	modules []module       // its allOf, in order
	topKeys map[string]bool
	err     error

	mu       sync.Mutex
	compiled map[string]*gojsonschema.Schema // by module set

	netOnce sync.Once
	network *gojsonschema.Schema
	netErr  error
}

// module is one member of the cloud-config schema's allOf.
type module struct {
	name string          // its definition, cc_write_files
	keys map[string]bool // the top-level keys it constrains
}

var (
	// Upstream is the strict schema of a recent cloud-init: unknown top-level
	// keys are errors. Every document kiln renders must pass it.
	Upstream = &Schema{Version: "25.1", dir: "schemas/upstream-25.1"}
	// Debian12 is the schema of the cloud-init in Debian 12 (bookworm) images.
	// It accepts unknown keys, and the guest silently ignores them at boot.
	Debian12 = &Schema{Version: "22.4", dir: "schemas/debian-22.4"}
)

// SchemaFor returns the embedded schema closest to a guest's cloud-init
// version ("22.4.2" -> Debian12); newer or unknown versions get Upstream.
func SchemaFor(version string) *Schema {
	if strings.HasPrefix(version, "22.") || strings.HasPrefix(version, "21.") || strings.HasPrefix(version, "20.") {
		return Debian12
	}
	return Upstream
}

// Problem is one schema violation. Pointer is a JSON pointer into the
// rendered document ("/write_files/2/permissions"); "" is the whole document.
type Problem struct {
	Pointer string
	Message string
}

func (p Problem) String() string {
	if p.Pointer == "" {
		return p.Message
	}
	return p.Pointer + ": " + p.Message
}

// ValidateUserData checks cloud-config user-data against the schema and
// returns every problem found. An error means the bytes are not a cloud-config
// at all (missing header, not YAML, not a mapping).
func (s *Schema) ValidateUserData(userData []byte) ([]Problem, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(userData), Header) {
		return nil, errors.New("cloudinit: user-data does not start with " + strings.TrimSpace(Header))
	}
	inst, err := instance(userData)
	if err != nil {
		return nil, err
	}
	doc, ok := inst.(map[string]any)
	if !ok {
		return nil, errors.New("cloudinit: user-data is not a YAML mapping")
	}
	sch, err := s.forKeys(doc)
	if err != nil {
		return nil, err
	}
	return validate(sch, inst)
}

// forKeys returns the schema compiled with the modules doc's keys use.
func (s *Schema) forKeys(doc map[string]any) (*gojsonschema.Schema, error) {
	var use []string
	for _, m := range s.modules {
		for k := range doc {
			if m.keys[k] {
				use = append(use, m.name)
				break
			}
		}
	}
	key := strings.Join(use, ",")
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.compiled[key]; ok {
		return sch, nil
	}
	sl := gojsonschema.NewSchemaLoader()
	pruned := make(map[string]any, len(s.root)+1)
	for k, v := range s.root {
		pruned[k] = v
	}
	var all []any
	for _, name := range use {
		b, err := schemaFS.ReadFile(path.Join(s.dir, "split", name+".json"))
		if err != nil {
			return nil, fmt.Errorf("cloudinit: embedded schemas: %w", err)
		}
		url := schemaURL(path.Join(s.dir, name+".json"))
		if err := sl.AddSchema(url, gojsonschema.NewBytesLoader(b)); err != nil {
			return nil, fmt.Errorf("cloudinit: schema %s: %s: %w", s.Version, name, err)
		}
		all = append(all, map[string]any{"$ref": url})
	}
	if len(all) > 0 {
		pruned["allOf"] = all
	}
	sch, err := sl.Compile(gojsonschema.NewGoLoader(pruned))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: compile schema %s: %w", s.Version, err)
	}
	if s.compiled == nil {
		s.compiled = map[string]*gojsonschema.Schema{}
	}
	s.compiled[key] = sch
	return sch, nil
}

// ValidateNetwork checks a network-config document. Only the upstream schema
// set carries network-config schemas.
func ValidateNetwork(networkConfig []byte) ([]Problem, error) {
	s := Upstream
	s.netOnce.Do(func() { s.network, s.netErr = s.compileNetwork() })
	if s.netErr != nil {
		return nil, s.netErr
	}
	inst, err := instance(networkConfig)
	if err != nil {
		return nil, err
	}
	return validate(s.network, inst)
}

// IgnoredKeys lists the top-level keys of userData that this schema's
// cloud-init does not know: a guest running it ignores them silently.
func (s *Schema) IgnoredKeys(userData []byte) ([]string, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	inst, err := instance(userData)
	if err != nil {
		return nil, err
	}
	m, _ := inst.(map[string]any)
	var out []string
	for k := range m {
		if !s.topKeys[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Schema) load() error {
	s.once.Do(func() { s.err = s.parse() })
	return s.err
}

// parse reads the index of the split schema (its keys and modules) and
// its root. It compiles nothing.
func (s *Schema) parse() error {
	b, err := schemaFS.ReadFile(path.Join(s.dir, "split", "index.json"))
	if err != nil {
		return fmt.Errorf("cloudinit: embedded schemas: %w", err)
	}
	var idx struct {
		Keys    []string `json:"keys"`
		Modules []struct {
			Name string   `json:"name"`
			Keys []string `json:"keys"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("cloudinit: schema index %s: %w", s.dir, err)
	}
	s.topKeys = map[string]bool{}
	for _, k := range idx.Keys {
		s.topKeys[k] = true
	}
	for _, m := range idx.Modules {
		mod := module{name: m.Name, keys: map[string]bool{}}
		for _, k := range m.Keys {
			mod.keys[k] = true
		}
		s.modules = append(s.modules, mod)
	}
	b, err = schemaFS.ReadFile(path.Join(s.dir, "split", "root.json"))
	if err != nil {
		return fmt.Errorf("cloudinit: embedded schemas: %w", err)
	}
	if err := json.Unmarshal(b, &s.root); err != nil {
		return fmt.Errorf("cloudinit: schema %s root: %w", s.dir, err)
	}
	return nil
}

// compileNetwork compiles the network-config v2 schema.
func (s *Schema) compileNetwork() (*gojsonschema.Schema, error) {
	b, err := schemaFS.ReadFile(path.Join(s.dir, "schema-network-config-v2.json"))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: embedded schemas: %w", err)
	}
	sch, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(b))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: compile network schema %s: %w", s.Version, err)
	}
	return sch, nil
}

func schemaURL(name string) string { return "file:///kiln/cloudinit/" + name }

// instance turns YAML bytes into the JSON value model the validator wants.
func instance(doc []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("cloudinit: not valid YAML: %w", err)
	}
	b, err := json.Marshal(jsonCompatible(v))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("cloudinit: %w", err)
	}
	return out, nil
}

func jsonCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonCompatible(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonCompatible(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonCompatible(e)
		}
		return t
	}
	return v
}

// validate runs sch on inst and returns its problems: a composite failure
// (allOf, anyOf, oneOf) is reported only where no problem below it says
// more.
func validate(sch *gojsonschema.Schema, inst any) ([]Problem, error) {
	res, err := sch.Validate(gojsonschema.NewGoLoader(inst))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: %w", err)
	}
	var out []Problem
	seen := map[Problem]bool{}
	errs := res.Errors()
	for _, e := range errs {
		p := Problem{Pointer: pointer(e.Context()), Message: e.Description()}
		if composite(e) && deeper(errs, p.Pointer) {
			continue
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pointer < out[j].Pointer })
	return out, nil
}

// composite reports a failure that only says a combination of schemas
// failed; the failures of its branches say why.
func composite(e gojsonschema.ResultError) bool {
	switch e.Type() {
	case "number_all_of", "number_any_of", "number_one_of":
		return true
	}
	return false
}

// deeper reports a problem that says more than a composite failure at
// pointer p: any problem below p, or one at p that is not composite.
func deeper(errs []gojsonschema.ResultError, p string) bool {
	for _, e := range errs {
		q := pointer(e.Context())
		if strings.HasPrefix(q, p+"/") || (q == p && !composite(e)) {
			return true
		}
	}
	return false
}

// pointer turns gojsonschema's context, (root).users.0.name, into the JSON
// pointer /users/0/name.
func pointer(c *gojsonschema.JsonContext) string {
	if c == nil {
		return ""
	}
	parts := strings.Split(c.String("\x00"), "\x00")[1:] // drop "(root)"
	if len(parts) == 0 {
		return ""
	}
	esc := strings.NewReplacer("~", "~0", "/", "~1")
	for i, p := range parts {
		parts[i] = esc.Replace(p)
	}
	return "/" + strings.Join(parts, "/")
}
