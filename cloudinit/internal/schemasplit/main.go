// Command schemasplit splits cloud-init's cloud-config schema into what
// kiln compiles per document: the root (the known top-level keys) and one
// self-contained schema per module (its definition with the definitions
// it refers to), plus an index of which keys each module constrains. The
// output is data derived from the schema files, byte for byte
// reproducible; cloudinit's TestSplitSchemasFresh fails when it is stale.
//
//	go run ./internal/schemasplit schemas/upstream-25.1 schemas/debian-22.4
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Index is split/index.json.
type Index struct {
	Schema  string   `json:"$schema"`
	Keys    []string `json:"keys"`    // every top-level key the schema knows
	Modules []Module `json:"modules"` // the root's allOf, in order
}

// Module is one member of the root's allOf.
type Module struct {
	Name string   `json:"name"` // its definition, e.g. cc_write_files
	Keys []string `json:"keys"` // the top-level keys it constrains
}

func main() {
	for _, dir := range os.Args[1:] {
		if err := split(dir); err != nil {
			fmt.Fprintln(os.Stderr, "schemasplit:", err)
			os.Exit(1)
		}
	}
}

var refRE = regexp.MustCompile(`"\$ref":"#/\$defs/([^"]+)"`)

func split(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "schema-cloud-config-v1.json"))
	if err != nil {
		return err
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(b, &root); err != nil {
		return err
	}
	var draft string
	var defs map[string]json.RawMessage
	var allOf []struct {
		Ref string `json:"$ref"`
	}
	var props map[string]json.RawMessage
	for k, dst := range map[string]any{"$schema": &draft, "$defs": &defs, "allOf": &allOf, "properties": &props} {
		if root[k] == nil && k == "properties" {
			continue // older schemas list keys only in their modules
		}
		if err := json.Unmarshal(root[k], dst); err != nil {
			return fmt.Errorf("%s: %s: %w", dir, k, err)
		}
	}
	out := filepath.Join(dir, "split")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	idx := Index{Schema: draft}
	known := map[string]bool{}
	for k := range props {
		known[k] = true
	}
	for _, a := range allOf {
		name, ok := strings.CutPrefix(a.Ref, "#/$defs/")
		if !ok || defs[name] == nil {
			return fmt.Errorf("%s: allOf member %q is not a definition", dir, a.Ref)
		}
		var def struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(defs[name], &def); err != nil {
			return err
		}
		m := Module{Name: name}
		for k := range def.Properties {
			m.Keys = append(m.Keys, k)
			known[k] = true
		}
		sort.Strings(m.Keys)
		idx.Modules = append(idx.Modules, m)
		if err := writeModule(out, draft, name, defs); err != nil {
			return err
		}
	}
	for k := range known {
		idx.Keys = append(idx.Keys, k)
	}
	sort.Strings(idx.Keys)
	// The root as it is, without its definitions and modules: those are
	// added per document.
	top := map[string]any{}
	for k, v := range root {
		if k != "$defs" && k != "allOf" {
			var x any
			json.Unmarshal(v, &x)
			top[k] = x
		}
	}
	if err := writeJSON(filepath.Join(out, "root.json"), top); err != nil {
		return err
	}
	return writeJSON(filepath.Join(out, "index.json"), idx)
}

// writeModule writes a module's definition as a schema of its own, with
// the definitions it refers to (transitively) under $defs, so its
// "#/$defs/..." references resolve within it.
func writeModule(out, draft, name string, defs map[string]json.RawMessage) error {
	need := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if need[n] {
			return
		}
		need[n] = true
		var compact bytes.Buffer
		json.Compact(&compact, defs[n])
		for _, m := range refRE.FindAllSubmatch(compact.Bytes(), -1) {
			walk(string(m[1]))
		}
	}
	walk(name)
	var body map[string]any
	if err := json.Unmarshal(defs[name], &body); err != nil {
		return err
	}
	sub := map[string]any{}
	for n := range need {
		var v any
		json.Unmarshal(defs[n], &v)
		sub[n] = v
	}
	body["$schema"] = draft
	body["$defs"] = sub
	return writeJSON(filepath.Join(out, name+".json"), body)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v) // maps are written with sorted keys
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
