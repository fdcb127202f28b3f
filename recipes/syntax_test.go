package recipes

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyntaxErrorRecovery: a YAML syntax error sets aside the top-level
// block it is in; the rest of the recipe is still decoded and validated, and
// its problems are reported with the syntax error, without errors the
// set-aside block would cause (a required field it held, a role it
// configured). When the rest cannot be checked, the error says so.
func TestSyntaxErrorRecovery(t *testing.T) {
	const notChecked = "; the rest of the recipe was not checked: fix the syntax error first"
	cases := []struct {
		name  string
		files map[string]string // r.yaml is loaded
		want  []string          // every error, in order
	}{
		{"unclosed list in bake", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbake:\n  packages: [htop\n  files: []\ndisk: {format: vmdk}\n"},
			[]string{
				`r.yaml:4:3: YAML syntax: did not find expected ',' or ']'; bake (lines 3-5) was set aside and the rest of the recipe checked`,
				`r.yaml:6:16: disk.format: unknown format "vmdk" (want qcow2 or raw)`,
			}},
		{"bad indentation in roles", map[string]string{"r.yaml": "apiVersion: kiln/v1\nroles:\n  - app-host:\n      port: 80\n     command: x\nboot: {timezone: mars}\n"},
			[]string{
				`r.yaml:1:1: name: missing required field name (a short image name like web or db-primary)`,
				`r.yaml:5:6: YAML syntax: did not find expected key; roles (lines 2-5) was set aside and the rest of the recipe checked`,
				`r.yaml:6:18: boot.timezone: invalid time zone "mars" (want an IANA name like UTC or Europe/Berlin)`,
			}},
		{"first line", map[string]string{"r.yaml": "apiVersion kiln/v1\nname: web\nbake: {packages: [Bad]}\n"},
			[]string{
				`r.yaml:1:1: YAML syntax: expected a key and a colon (key: value) at the top level; apiVersion (line 1) was set aside and the rest of the recipe checked`,
				`r.yaml:3:19: bake.packages[0]: invalid package name "Bad"`,
			}},
		{"tab indentation", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbake:\n\tpackages: [htop]\nboot: {timezone: mars}\n"},
			[]string{
				`r.yaml:4:1: YAML syntax: found character that cannot start any token (a tab: YAML indents with spaces); bake (lines 3-4) was set aside and the rest of the recipe checked`,
				`r.yaml:5:18: boot.timezone: invalid time zone "mars" (want an IANA name like UTC or Europe/Berlin)`,
			}},
		{"unclosed quote", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\ndescription: \"a web server\nroles:\n  - app-host: {port: 70000, command: x}\n"},
			[]string{
				`r.yaml:3:1: YAML syntax: found unexpected end of stream; description (line 3) was set aside and the rest of the recipe checked`,
				`r.yaml:5:22: roles[0].app-host.port: port 70000 is not in 1-65535`,
			}},
		{"unclosed quote in a required field", map[string]string{"r.yaml": "apiVersion: 'kiln/v1\nname: web\n"},
			[]string{`r.yaml:1:1: YAML syntax: found unexpected end of stream; apiVersion (line 1) was set aside and the rest of the recipe checked`}},
		{"two broken blocks", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbake:\n  packages: [htop\nroles:\n  - app-host: {command: x}\n  - proxy: {frontends: [{listen: 80}\ndisk: {size: 1MiB}\n"},
			[]string{
				`r.yaml:4:3: YAML syntax: did not find expected ',' or ']'; bake (lines 3-4) was set aside and the rest of the recipe checked`,
				`r.yaml:7:3: YAML syntax: did not find expected ',' or ']'; roles (lines 5-7) was set aside and the rest of the recipe checked`,
				`r.yaml:8:14: disk.size: disk size 1MiB is out of range (1GiB to 16TiB)`,
			}},
		{"blank lines and comments in a broken block", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbake:\n\n  # packages\n  packages: [htop\n\n# done\nbase: x:y\n"},
			[]string{
				`r.yaml:6:3: YAML syntax: did not find expected ',' or ']'; bake (lines 3-6) was set aside and the rest of the recipe checked`,
				`r.yaml:9:7: base: kiln builds package bases for debian only, not "x"; use a cloud image file or URL as base instead`,
			}},
		{"anchor in a set-aside block", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbake:\n  packages: &pk [htop\nboot:\n  commands: *pk\n"},
			[]string{
				`r.yaml:4:3: YAML syntax: did not find expected ',' or ']'; bake (lines 3-4) was set aside and the rest of the recipe checked`,
				`r.yaml:5:1: boot: not checked: it uses an anchor (&pk) defined in lines set aside for a syntax error`,
			}},
		{"required field in a set-aside block", map[string]string{"r.yaml": "name: web\n  apiVersion: kiln/v1\nbase: debian:Bookworm\n"},
			[]string{
				`r.yaml:2:3: YAML syntax: mapping values are not allowed in this context; name (lines 1-2) was set aside and the rest of the recipe checked`,
				`r.yaml:3:7: base: unsupported Debian release "Bookworm" (did you mean debian:bookworm?); supported: ` + supported,
			}},
		{"broken extends", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nextends: \"base.yaml\nbake: {packages: [Bad]}\n"},
			[]string{`r.yaml:3:1: YAML syntax: found unexpected end of stream` + notChecked}},
		{"one flow mapping", map[string]string{"r.yaml": "{apiVersion: kiln/v1, name: web,\nbake: {packages: [Bad]}\n"},
			[]string{`r.yaml:2:1: YAML syntax: did not find expected ',' or '}'` + notChecked}},
		{"in an extended file", map[string]string{
			"parent.yaml": "apiVersion: kiln/v1\nname: p\nroles:\n  - app-host: {command: /bin/app\n",
			"r.yaml":      header + "extends: parent.yaml\nroles:\n  - app-host: {port: 9090}\ndisk: {format: vmdk}\n"},
			[]string{
				`parent.yaml:4:3: YAML syntax: did not find expected ',' or '}'; roles (lines 3-4) was set aside and the rest of the recipe checked`,
				`r.yaml:6:16: disk.format: unknown format "vmdk" (want qcow2 or raw)`,
			}},
		{"second document", map[string]string{"r.yaml": header + "---\nname: [\n"},
			[]string{`r.yaml:3:1: a recipe file holds one YAML document; remove the second ---`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFiles(t, c.files)
			for _, load := range []func(string) (*Recipe, error){Load, LoadAndCheck} {
				_, err := load(filepath.Join(dir, "r.yaml"))
				var got []string
				for _, e := range recipeErrors(t, err) {
					got = append(got, strings.ReplaceAll(e.Error(), dir+"/", ""))
				}
				if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
					t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
				}
			}
		})
	}
}

// recipeErrors returns the positioned errors in err, which must hold some.
func recipeErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var el ErrorList
	var e *Error
	switch {
	case errors.As(err, &el):
		return el
	case errors.As(err, &e):
		return []*Error{e}
	}
	t.Fatalf("want recipe errors, got %T: %v", err, err)
	return nil
}

// TestSyntaxErrorInLongBlock: in a block too long to try every line, the
// error is still placed on its line, found near the one yaml.v3 names.
func TestSyntaxErrorInLongBlock(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "bake:\n  files:\n")
	for i := 0; b.Len() < 200<<10; i++ {
		fmt.Fprintf(&b, "    - {path: /etc/f%d, content: x}\n", i)
	}
	lines := strings.Count(b.String(), "\n")
	b.WriteString("  packages: [oops\ndisk: {format: vmdk}\n")
	dir := writeFiles(t, map[string]string{"r.yaml": b.String()})
	_, err := Load(filepath.Join(dir, "r.yaml"))
	errs := recipeErrors(t, err)
	want := fmt.Sprintf("r.yaml:%d:3: YAML syntax: did not find expected ',' or ']'; bake (lines 3-%d)", lines+1, lines+1)
	if len(errs) != 2 || !strings.HasPrefix(strings.ReplaceAll(errs[0].Error(), dir+"/", ""), want) {
		t.Fatalf("want %s..., got\n%v", want, err)
	}
}
