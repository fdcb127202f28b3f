package cloudinit

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Header is the first line every cloud-config user-data must start with.
const Header = "#cloud-config\n"

// Render returns the user-data bytes: the #cloud-config header and the YAML
// document. Output is deterministic: fields in declaration order, map keys
// sorted.
func (c *Config) Render() ([]byte, error) {
	for k := range c.Extra {
		if isModelled(k) {
			return nil, fmt.Errorf("cloudinit: extra key %q is modelled by kiln; set it through the recipe instead", k)
		}
	}
	body, err := marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte(Header), body...), nil
}

// MetaData is the NoCloud meta-data document.
type MetaData struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname,omitempty"`
	// DSMode "local" has cloud-init's local stage, before networking,
	// apply the whole seed (init modules included); the network stage then
	// has nothing to do. Empty means cloud-init's default, "net".
	DSMode string `yaml:"dsmode,omitempty"`
}

// Render returns the meta-data bytes.
func (m MetaData) Render() ([]byte, error) {
	if m.InstanceID == "" {
		return nil, fmt.Errorf("cloudinit: meta-data needs an instance-id")
	}
	return marshal(m)
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cloudinit: render: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cloudinit: render: %w", err)
	}
	return b.Bytes(), nil
}

// modelled holds the yaml keys of Config's own fields, derived from its tags.
var modelled = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}()

func isModelled(k string) bool { return modelled[k] }
