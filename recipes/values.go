package recipes

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Size is a byte count written as 4GiB, 512MiB, 10G (binary) or 2GB (decimal).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
}

// ParseSize reads a size such as "4GiB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || (n > 0 && mult > (1<<62)/n) {
		return 0, fmt.Errorf("invalid size %q: write a whole number with a unit, like 4GiB or 512MiB", s)
	}
	return Size(n * mult), nil
}

func (s *Size) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "expected a size like 4GiB, got %s", describe(n))
		return
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*s = v
}

func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s > 0 && int64(s)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// MarshalYAML writes the human form.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// Duration is a Go-style duration: 90s, 5m, 1h30m.
type Duration time.Duration

func (du *Duration) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "expected a duration like 30s or 5m, got %s", describe(n))
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		d.errorf(n, path, "invalid duration %q: write it like 30s, 5m or 1h30m", n.Value)
		return
	}
	*du = Duration(v)
}

// D returns the time.Duration.
func (du Duration) D() time.Duration { return time.Duration(du) }

func (du Duration) String() string { return time.Duration(du).String() }

// MarshalYAML writes the human form.
func (du Duration) MarshalYAML() (any, error) { return du.String(), nil }

// Mode is a file permission, always read as octal: 0644, "0755", 0o600.
type Mode uint32

func (m *Mode) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "expected octal permissions like \"0644\", got %s", describe(n))
		return
	}
	// The raw text, not the YAML integer: 0644 must not become 420 or 644.
	t := strings.TrimPrefix(strings.TrimPrefix(n.Value, "0o"), "0O")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || v > 0o7777 {
		d.errorf(n, path, "invalid mode %q: write octal permissions like \"0644\" or \"0755\"", n.Value)
		return
	}
	*m = Mode(v)
}

func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalYAML writes the octal form.
func (m Mode) MarshalYAML() (any, error) { return m.String(), nil }

// Command is a shell command line ("systemctl enable x && ...") or an argv
// list run without a shell ([systemctl, enable, x]).
type Command struct {
	Shell string   `json:",omitempty"`
	Argv  []string `json:",omitempty"`
}

func (c *Command) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch {
	case n.Kind == yaml.ScalarNode && !isNull(n) && n.ShortTag() != "!!bool":
		c.Shell = n.Value
	case n.Kind == yaml.SequenceNode:
		c.Argv = make([]string, len(n.Content))
		for i, a := range n.Content {
			a = d.resolve(a, path)
			if s, ok := d.scalarString(a, fmt.Sprintf("%s[%d]", path, i)); ok {
				c.Argv[i] = s
			}
		}
	default:
		d.errorf(n, path, "expected a command: a string for the shell, or a list like [systemctl, enable, nginx]; got %s", describe(n))
	}
}

// Empty reports whether no command was given.
func (c Command) Empty() bool { return c.Shell == "" && len(c.Argv) == 0 }

func (c Command) String() string {
	if c.Argv != nil {
		q := make([]string, len(c.Argv))
		for i, a := range c.Argv {
			q[i] = shellQuote(a)
		}
		return strings.Join(q, " ")
	}
	return c.Shell
}

// MarshalYAML writes the form it was given in.
func (c Command) MarshalYAML() (any, error) {
	if c.Argv != nil {
		return c.Argv, nil
	}
	return c.Shell, nil
}

// shellQuote quotes s for POSIX sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Secret is a value that must not be written in a recipe in plain text: a
// reference env:NAME or file:PATH resolved only when a seed is written, or,
// for password fields, a crypt(3) hash.
type Secret string

// Ref splits a reference into its kind ("env" or "file") and target; ok is
// false for anything else.
func (s Secret) Ref() (kind, target string, ok bool) {
	k, t, found := strings.Cut(string(s), ":")
	if !found || t == "" || (k != "env" && k != "file") {
		return "", "", false
	}
	return k, t, true
}

func itoa(i int) string { return strconv.Itoa(i) }
