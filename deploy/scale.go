package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/kiln-project/kiln/internal/atomicfile"
)

// SetCapacity writes a set's new capacity into the fleet file, which stays
// the one desired state: comments and the other sets are kept, the result
// must load cleanly before it replaces the file (temp file, rename).
func SetCapacity(path, set string, n int) error {
	return setField(path, set, "capacity", strconv.Itoa(n))
}

// SetImage writes a set's new image reference into the fleet file, as
// SetCapacity writes its capacity: `kiln deploy upgrade --image` and
// `--rollback` change the desired state, and the controller follows it.
func SetImage(path, set, ref string) error { return setField(path, set, "image", ref) }

func setField(path, set, key, value string) error {
	data, err := readFleetFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	found := false
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if m := mappingOf(&doc); m != nil && scalarValue(m, "name") == set {
			found = true
			setScalar(m, key, value)
		}
		docs = append(docs, &doc)
	}
	if !found {
		return fmt.Errorf("%s has no set %q", path, set)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return err
		}
	}
	enc.Close()
	if _, err := loadFleet(path, out.Bytes()); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, out.Bytes(), st.Mode().Perm())
}

func mappingOf(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		return doc.Content[0]
	}
	return nil
}

func scalarValue(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// setScalar sets key's value, adding the key after "name" when missing.
func setScalar(m *yaml.Node, key, value string) {
	tag := "!!str"
	if _, err := strconv.Atoi(value); err == nil {
		tag = "!!int"
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value, LineComment: m.Content[i+1].LineComment}
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value})
}
