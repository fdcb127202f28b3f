package recipes

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many YAML nodes one recipe may expand to, aliases
// included, so a "billion laughs" document fails fast instead of eating memory.
const maxNodes = 1 << 20

// decoder maps a YAML node tree onto Go structs strictly: unknown keys,
// duplicate keys and wrong types are errors with the node's position, and
// decoding goes on after an error so one run reports every problem.
type decoder struct {
	fileOf func(*yaml.Node) string
	errs   ErrorList
	pos    map[string]Pos // field path -> where it was written
	nodes  int
	what   string // what is decoded, for messages: "recipe" unless told
}

// nodeDecoder is implemented by types with their own YAML forms
// (a command is a string or a list; a size is "4GiB"; ...).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

func newDecoder(fileOf func(*yaml.Node) string) *decoder {
	return &decoder{fileOf: fileOf, pos: map[string]Pos{}, what: "recipe"}
}

func (d *decoder) position(n *yaml.Node) Pos {
	return Pos{File: d.fileOf(n), Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.position(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases and counts nodes against the expansion budget.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errorf(n, path, "%s expands to more than %d YAML nodes (aliases included); simplify it", d.what, maxNodes)
	}
	return n
}

func (d *decoder) exhausted() bool { return d.nodes >= maxNodes }

// decode stores node n into v, which must be addressable.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	n = d.resolve(n, path)
	if n == nil || d.exhausted() {
		return
	}
	if _, ok := d.pos[path]; !ok {
		d.pos[path] = d.position(n)
	}
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Slice:
		d.decodeSlice(n, path, v)
	case reflect.Map:
		d.decodeMap(n, path, v)
	case reflect.String:
		if s, ok := d.scalarString(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.errorf(n, path, "expected an integer, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.errorf(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, path, "expected a finite number, got %s", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n, path, "%v", err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.errorf(n, path, "internal error: cannot decode into %s", v.Type())
	}
}

// scalarString accepts any non-null scalar as a string except booleans,
// which are almost always a forgotten pair of quotes.
func (d *decoder) scalarString(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a string, got %s", describe(n))
		return "", false
	}
	if n.ShortTag() == "!!bool" {
		d.errorf(n, path, "expected a string, got the boolean %s (quote it: %q)", n.Value, n.Value)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping of keys, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i], path), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain strings")
			continue
		}
		sub := join(path, k.Value)
		if seen[k.Value] {
			d.errorf(k, sub, "key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.unknownKey(k, path, k.Value, fieldNames(fields))
			continue
		}
		d.decode(val, sub, v.FieldByIndex(idx))
	}
}

func (d *decoder) unknownKey(k *yaml.Node, path, key string, valid []string) {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := closest(key, valid); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += fmt.Sprintf(" (valid keys: %s)", strings.Join(valid, ", "))
	}
	d.errorf(k, join(path, key), "%s", msg)
}

func (d *decoder) decodeSlice(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errorf(n, path, "internal error: map keys must be strings")
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i], path)
		key, ok := d.scalarString(k, path)
		if !ok {
			continue
		}
		sub := join(path, key)
		if m.MapIndex(reflect.ValueOf(key).Convert(v.Type().Key())).IsValid() {
			d.errorf(k, sub, "key %q appears twice", key)
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(n.Content[i+1], sub, elem)
		m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

// structFields maps yaml key -> field index for a struct type.
func structFields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = f.Index
	}
	return m
}

func fieldNames(fields map[string][]int) []string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's kind for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "nothing"
		}
		return strconv.Quote(truncate(n.Value, 40))
	}
	return "an unsupported YAML node"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
