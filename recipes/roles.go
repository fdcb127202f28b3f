package recipes

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Role is one entry of a recipe's roles list: a built-in role and its
// parameters. In YAML it is the role name alone ("- app-host") or the name
// with a mapping of parameters ("- app-host: {port: 9000}").
type Role struct {
	Name   string
	Params RoleParams
	path   string // "roles[1].cron-runner": where its params live, for errors
}

// RoleParams is the typed parameter set of one role. Each role's type has
// defaults (set by its constructor), validation and the plan it contributes.
type RoleParams interface {
	validate(v *validator)
	contribute(c *contribution) error
}

// roleDef describes a built-in role.
type roleDef struct {
	name    string
	summary string
	new     func() RoleParams // params with defaults filled
}

var roleDefs = map[string]roleDef{}

func registerRole(def roleDef) { roleDefs[def.name] = def }

// RoleNames lists the built-in roles, sorted.
func RoleNames() []string {
	names := make([]string, 0, len(roleDefs))
	for n := range roleDefs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Role) decodeNode(d *decoder, n *yaml.Node, path string) {
	var params *yaml.Node
	switch {
	case n.Kind == yaml.ScalarNode && !isNull(n):
		r.Name = n.Value
	case n.Kind == yaml.MappingNode && len(n.Content) == 2:
		r.Name, params = d.resolve(n.Content[0], path).Value, n.Content[1]
	default:
		d.errorf(n, path, "expected a role: its name (- app-host) or its name with parameters (- app-host: {port: 8080}); got %s", describe(n))
		return
	}
	def, ok := roleDefs[r.Name]
	if !ok {
		msg := fmt.Sprintf("unknown role %q", r.Name)
		if s := closest(r.Name, RoleNames()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.errorf(n, path, "%s; built-in roles: %s", msg, strings.Join(RoleNames(), ", "))
		return
	}
	r.path = join(path, r.Name)
	r.Params = def.new()
	d.pos[r.path] = d.position(n)
	if params != nil && !isNull(d.resolve(params, r.path)) {
		d.decode(params, r.path, reflect.ValueOf(r.Params).Elem())
	}
}

// MarshalYAML writes the role back in its YAML form.
func (r Role) MarshalYAML() (any, error) {
	return map[string]any{r.Name: r.Params}, nil
}

// RoleInfo documents a built-in role for `kiln roles` and the docs.
type RoleInfo struct {
	Name    string      `json:"name"`
	Summary string      `json:"summary"`
	Params  []ParamInfo `json:"params"`
	// Software is what the role installs or relies on, with the version
	// each supported release brings (see Releases).
	Software []RoleSoftware `json:"software"`
}

// ParamInfo documents one parameter. Nested structures are flattened with
// dotted names; list items use "[]".
type ParamInfo struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Default string `json:"default,omitempty"`
	Doc     string `json:"doc"`
}

// Roles describes every built-in role, sorted by name.
func Roles() []RoleInfo {
	var out []RoleInfo
	for _, name := range RoleNames() {
		def := roleDefs[name]
		out = append(out, RoleInfo{Name: name, Summary: def.summary, Params: describeParams(reflect.ValueOf(def.new()).Elem(), ""), Software: softwareOf(name)})
	}
	return out
}

// DescribeRole describes one role; ok is false when there is none by that name.
func DescribeRole(name string) (RoleInfo, bool) {
	for _, ri := range Roles() {
		if ri.Name == name {
			return ri, true
		}
	}
	return RoleInfo{}, false
}

func describeParams(v reflect.Value, prefix string) []ParamInfo {
	var out []ParamInfo
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		full := prefix + name
		fv := v.Field(i)
		info := ParamInfo{Name: full, Type: typeName(f.Type), Doc: f.Tag.Get("doc")}
		// A nested object documents its fields, with their defaults, below it.
		if st, ok := structOf(f.Type); ok && f.Type.Kind() != reflect.Slice {
			out = append(out, info)
			inner := reflect.New(st).Elem()
			if fv.Kind() == reflect.Pointer && !fv.IsNil() {
				inner = fv.Elem()
			} else if fv.Kind() == reflect.Struct {
				inner = fv
			}
			out = append(out, describeParams(inner, full+".")...)
			continue
		}
		info.Default = defaultString(fv)
		out = append(out, info)
		if st, ok := structOf(f.Type); ok {
			out = append(out, describeParams(reflect.New(st).Elem(), full+"[].")...)
		} else if f.Type.Kind() == reflect.Map {
			if st, ok := structOf(f.Type.Elem()); ok {
				out = append(out, describeParams(reflect.New(st).Elem(), full+".<name>.")...)
			}
		}
	}
	return out
}

// structOf returns the struct type behind pointers and slices, unless it
// reads as a scalar in YAML.
func structOf(t reflect.Type) (reflect.Type, bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t, t.Kind() == reflect.Struct && !isValueType(t)
}

// isValueType reports types that read as one scalar in YAML.
func isValueType(t reflect.Type) bool {
	switch t {
	case reflect.TypeOf(Command{}), reflect.TypeOf(Role{}):
		return true
	}
	return false
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(Size(0)):
		return "size"
	case reflect.TypeOf(Duration(0)):
		return "duration"
	case reflect.TypeOf(Mode(0)):
		return "mode"
	case reflect.TypeOf(Command{}):
		return "command"
	case reflect.TypeOf(Secret("")):
		return "secret"
	case reflect.TypeOf(Role{}):
		return "role"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	case reflect.Struct:
		return "object"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Bool:
		return "boolean"
	}
	return t.Kind().String()
}

func defaultString(v reflect.Value) string {
	if v.IsZero() {
		return ""
	}
	if x, ok := v.Interface().(fmt.Stringer); ok {
		return x.String()
	}
	switch v.Kind() {
	case reflect.Pointer:
		return defaultString(v.Elem())
	case reflect.Slice, reflect.Struct, reflect.Map:
		var n yaml.Node
		if err := n.Encode(v.Interface()); err != nil {
			return fmt.Sprint(v.Interface())
		}
		flow(&n)
		b, _ := yaml.Marshal(&n)
		return strings.TrimSpace(string(b))
	}
	return fmt.Sprint(v.Interface())
}

// flow makes a YAML node print on one line: [{port: 22, proto: tcp}].
func flow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		flow(c)
	}
}

// RecipeInfo documents the fields of a recipe itself, like a role's.
func RecipeInfo() RoleInfo {
	r := Recipe{}
	Default(&r)
	return RoleInfo{Name: "recipe", Summary: "a kiln/v1 recipe", Params: describeParams(reflect.ValueOf(r), "")}
}
