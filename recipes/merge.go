package recipes

import "gopkg.in/yaml.v3"

// appendPaths are the lists a recipe adds to when it extends another;
// every other value in the child replaces the parent's.
var appendPaths = map[string]bool{
	"bake.packages": true, "bake.files": true, "bake.users": true, "bake.units": true, "bake.commands": true,
	"boot.users": true, "boot.files": true, "boot.commands": true,
	"checks": true,
}

// merge lays child over parent and returns a new tree; the inputs are not
// modified. Nodes keep their own positions, so errors still point at the file
// and line a value came from. Roles merge by name, their parameters key by key.
func (l *loader) merge(parent, child *yaml.Node, path string) *yaml.Node {
	parent, child = deref(parent), deref(child)
	switch {
	case path == "roles" && parent.Kind == yaml.SequenceNode && child.Kind == yaml.SequenceNode:
		return l.mergeRoles(parent, child)
	case appendPaths[path] && parent.Kind == yaml.SequenceNode && child.Kind == yaml.SequenceNode:
		out := l.clone(parent)
		out.Content = append(append([]*yaml.Node{}, parent.Content...), child.Content...)
		return out
	case parent.Kind == yaml.MappingNode && child.Kind == yaml.MappingNode:
		out := l.clone(parent)
		out.Content = append([]*yaml.Node{}, parent.Content...)
		for i := 0; i+1 < len(child.Content); i += 2 {
			k, v := child.Content[i], child.Content[i+1]
			j := keyIndex(out, k.Value)
			if j < 0 {
				out.Content = append(out.Content, k, v)
				continue
			}
			out.Content[j] = k
			out.Content[j+1] = l.merge(out.Content[j+1], v, join(path, k.Value))
		}
		return out
	}
	return child
}

func (l *loader) mergeRoles(parent, child *yaml.Node) *yaml.Node {
	out := l.clone(parent)
	out.Content = append([]*yaml.Node{}, parent.Content...)
	for _, c := range child.Content {
		name := roleName(c)
		j := -1
		for i, p := range out.Content {
			if name != "" && roleName(p) == name {
				j = i
			}
		}
		switch {
		case j < 0:
			out.Content = append(out.Content, c)
		case deref(c).Kind == yaml.MappingNode && deref(out.Content[j]).Kind == yaml.MappingNode:
			out.Content[j] = l.merge(out.Content[j], c, "roles[]")
		case deref(c).Kind == yaml.MappingNode:
			out.Content[j] = c
		}
	}
	return out
}

// roleName is the role a roles[] item names: "app-host" or {app-host: {...}}.
func roleName(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n.Kind == yaml.ScalarNode:
		return n.Value
	case n.Kind == yaml.MappingNode && len(n.Content) == 2:
		return n.Content[0].Value
	}
	return ""
}

func (l *loader) clone(n *yaml.Node) *yaml.Node {
	c := *n
	l.fileOf[&c] = l.fileOf[n]
	return &c
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if deref(m.Content[i]).Value == key {
			return i
		}
	}
	return -1
}

// mappingValue returns the key and value nodes of key in mapping m.
func mappingValue(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if i := keyIndex(m, key); i >= 0 {
		return m.Content[i], m.Content[i+1]
	}
	return nil, nil
}

func removeKey(m *yaml.Node, key string) {
	if i := keyIndex(m, key); i >= 0 {
		m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
	}
}
