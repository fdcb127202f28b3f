package cloudinit

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// The schemas are embedded split per module (schemas/*/split, made from
// the schema files by internal/schemasplit): a document's validation reads
// and compiles only the root and the modules it uses.
//
//go:generate go run ./internal/schemasplit schemas/upstream-25.1 schemas/debian-22.4
//go:embed schemas/upstream-25.1/split/*.json schemas/debian-22.4/split/*.json schemas/upstream-25.1/schema-network-config-v2.json
var schemaFS embed.FS

// Schema is one cloud-init version's published schema set.
//
// Compiling the whole cloud-config schema costs tens of milliseconds, more
// than writing a seed: kiln compiles only what a document needs, when it
// is first validated. The schema is an allOf of one definition per
// cloud-init module, each of the form {type: object, properties: {...}}
// (TestModuleShape keeps it so), so a module none of whose keys a
// document has cannot fail it: the compiled schema keeps the root (its
// list of known keys, additionalProperties: false) and the modules whose
// keys the document uses (TestPrunedMatchesFull compares it with the whole
// schema). Compiled schemas are kept per module set.
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
	compiled map[string]*jsonschema.Schema // by module set

	netOnce sync.Once
	network *jsonschema.Schema
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
	if !bytes.HasPrefix(userData, []byte(Header)) {
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
	return problems(sch.Validate(inst)), nil
}

// forKeys returns the schema compiled with the modules doc's keys use.
func (s *Schema) forKeys(doc map[string]any) (*jsonschema.Schema, error) {
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
	c := jsonschema.NewCompiler()
	pruned := make(map[string]any, len(s.root)+1)
	for k, v := range s.root {
		pruned[k] = v
	}
	var all []any
	for _, name := range use {
		doc, err := s.readJSON("split/" + name + ".json")
		if err != nil {
			return nil, err
		}
		url := schemaURL(path.Join(s.dir, name+".json"))
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("cloudinit: schema %s: %s: %w", s.Version, name, err)
		}
		all = append(all, map[string]any{"$ref": url})
	}
	if len(all) > 0 {
		pruned["allOf"] = all
	}
	url := schemaURL(path.Join(s.dir, "cloud-config", key+".json"))
	if err := c.AddResource(url, pruned); err != nil {
		return nil, fmt.Errorf("cloudinit: schema %s: %w", s.Version, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: compile schema %s: %w", s.Version, err)
	}
	if s.compiled == nil {
		s.compiled = map[string]*jsonschema.Schema{}
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
	return problems(s.network.Validate(inst)), nil
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
	root, err := s.readJSON("split/root.json")
	if err != nil {
		return err
	}
	if s.root, _ = root.(map[string]any); s.root == nil {
		return fmt.Errorf("cloudinit: schema %s: root is not an object", s.dir)
	}
	return nil
}

// readJSON reads an embedded schema file of s.
func (s *Schema) readJSON(name string) (any, error) {
	b, err := schemaFS.ReadFile(path.Join(s.dir, name))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: embedded schemas: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: schema %s/%s: %w", s.dir, name, err)
	}
	return doc, nil
}

// compileNetwork compiles the network-config v2 schema.
func (s *Schema) compileNetwork() (*jsonschema.Schema, error) {
	name := "schema-network-config-v2.json"
	b, err := schemaFS.ReadFile(path.Join(s.dir, name))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: embedded schemas: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: schema %s: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL(name), doc); err != nil {
		return nil, fmt.Errorf("cloudinit: schema %s: %w", name, err)
	}
	sch, err := c.Compile(schemaURL(name))
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
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
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

var printer = message.NewPrinter(language.English)

// problems flattens a validation error tree to its most specific leaves. For
// oneOf/anyOf only the branch that got deepest into the document is kept:
// that is the one the author meant, and the others are noise.
func problems(err error) []Problem {
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		if err != nil {
			return []Problem{{Message: err.Error()}}
		}
		return nil
	}
	seen := map[Problem]bool{}
	var out []Problem
	for _, leaf := range leaves(ve) {
		p := Problem{Pointer: pointer(leaf.InstanceLocation), Message: leaf.ErrorKind.LocalizedString(printer)}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	kw := e.ErrorKind.KeywordPath()
	if len(kw) > 0 && (kw[len(kw)-1] == "oneOf" || kw[len(kw)-1] == "anyOf") {
		best, depth := e.Causes[0], -1
		for _, c := range e.Causes {
			if d := maxDepth(c); d > depth {
				best, depth = c, d
			}
		}
		return leaves(best)
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func maxDepth(e *jsonschema.ValidationError) int {
	d := len(e.InstanceLocation)
	for _, c := range e.Causes {
		d = max(d, maxDepth(c))
	}
	return d
}

func pointer(loc []string) string {
	if len(loc) == 0 {
		return ""
	}
	esc := make([]string, len(loc))
	for i, s := range loc {
		esc[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
	}
	return "/" + strings.Join(esc, "/")
}
