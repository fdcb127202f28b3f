package recipes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRecipe writes files into a temp dir and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const header = "apiVersion: kiln/v1\nname: web\n"

// TestBadInput covers every kind of bad recipe a user can write: each must be
// refused with the file, line and column of the problem and a message that
// says how to fix it.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string // "r.yaml" is loaded
		want  []string          // substrings of the error, the first is the position
	}{
		{"unknown key with suggestion", map[string]string{"r.yaml": header + "bake:\n  pakages: [htop]\n"},
			[]string{"r.yaml:4:3: bake.pakages:", `unknown key "pakages"`, `did you mean "packages"?`}},
		{"oci base without a registry host", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbase: oci://library/web:1\n"},
			[]string{"r.yaml:3:7: base:", "invalid OCI reference", "registry host written out"}},
		{"oci base with a bad tag", map[string]string{"r.yaml": "apiVersion: kiln/v1\nname: web\nbase: oci://registry.example.com/web:bad tag\n"},
			[]string{"r.yaml:3:7: base:", "invalid OCI reference"}},
		{"unknown top-level key", map[string]string{"r.yaml": header + "rolez: []\n"},
			[]string{"r.yaml:3:1: rolez:", `did you mean "roles"?`}},
		{"wrong type", map[string]string{"r.yaml": header + "bake:\n  packages: htop\n"},
			[]string{"r.yaml:4:13: bake.packages:", `expected a list, got "htop"`}},
		{"wrong scalar type", map[string]string{"r.yaml": header + "checks:\n  - tcp: {port: eighty}\n"},
			[]string{"r.yaml:4:17: checks[0].tcp.port:", `expected an integer, got "eighty"`}},
		{"missing required field", map[string]string{"r.yaml": "apiVersion: kiln/v1\nbase: debian:bookworm\n"},
			[]string{"r.yaml:1:1: name:", "missing required field name"}},
		{"missing apiVersion", map[string]string{"r.yaml": "name: web\n"},
			[]string{"r.yaml:1:1: apiVersion:", "missing required field apiVersion (add apiVersion: kiln/v1)"}},
		{"bad cron schedule", map[string]string{"r.yaml": header + "roles:\n  - cron-runner:\n      jobs:\n        - {name: a, schedule: \"61 * * * *\", command: /bin/true}\n"},
			[]string{"r.yaml:6:31: roles[0].cron-runner.jobs[0].schedule:", "minute: 61 is out of range 0-59"}},
		{"bad calendar schedule", map[string]string{"r.yaml": header + "roles:\n  - cron-runner:\n      jobs:\n        - {name: a, schedule: \"every tuesday\", command: [/bin/true]}\n"},
			[]string{"roles[0].cron-runner.jobs[0].schedule:", "not cron syntax"}},
		{"unknown role", map[string]string{"r.yaml": header + "roles:\n  - app-hots: {port: 80}\n"},
			[]string{"r.yaml:4:5: roles[0]:", `unknown role "app-hots" (did you mean "app-host"?)`}},
		{"bad role param", map[string]string{"r.yaml": header + "roles:\n  - proxy:\n      frontends:\n        - {listen: 70000, servers: [a:1]}\n"},
			[]string{"r.yaml:6:20: roles[0].proxy.frontends[0].listen:", "port 70000 is not in 1-65535"}},
		{"app-host bind not an address", map[string]string{"r.yaml": header + "roles:\n  - app-host: {command: x, bind: localhost}\n"},
			[]string{"r.yaml:4:34: roles[0].app-host.bind:", `invalid address "localhost"`}},
		{"unknown role param", map[string]string{"r.yaml": header + "roles:\n  - app-host:\n      prot: 80\n      command: x\n"},
			[]string{"r.yaml:5:7: roles[0].app-host.prot:", `did you mean "port"?`}},
		{"plain-text password", map[string]string{"r.yaml": header + "boot:\n  users:\n    - {name: ops, password: hunter2}\n"},
			[]string{"r.yaml:5:29: boot.users[0].password:", "plain-text passwords are refused", "mkpasswd -m sha-512"}},
		{"plain-text passwordHash", map[string]string{"r.yaml": header + "boot:\n  users:\n    - {name: ops, passwordHash: hunter2}\n"},
			[]string{"boot.users[0].passwordHash:", "not a crypt(3) hash"}},
		{"plain-text database password", map[string]string{"r.yaml": header + "roles:\n  - database:\n      users: [{name: app, password: hunter2}]\n"},
			[]string{"roles[0].database.users[0].password:", "plain-text passwords are refused"}},
		{"baked secret", map[string]string{"r.yaml": header + "bake:\n  files:\n    - {path: /etc/x, secret: env:X}\n"},
			[]string{"bake.files[0].secret:", "never baked"}},
		{"extends cycle", map[string]string{"r.yaml": header + "extends: b.yaml\n", "b.yaml": header + "extends: r.yaml\n"},
			[]string{"b.yaml:3:10: extends: extends cycle:", "r.yaml -> ", "b.yaml -> ", "r.yaml"}},
		{"extends a directory", map[string]string{"r.yaml": header + "extends: sub\n", "sub/x": ""},
			[]string{"r.yaml:3:10: extends:", `"sub": is a directory, not a recipe file`}},
		{"extends an empty file", map[string]string{"r.yaml": header + "extends: p.yaml\n", "p.yaml": ""},
			[]string{"p.yaml:1:1: recipe is empty"}},
		{"extends missing", map[string]string{"r.yaml": header + "extends: nope.yaml\n"},
			[]string{"r.yaml:3:10: extends:", `cannot read "nope.yaml"`}},
		{"file reference escaping the recipe's directory", map[string]string{"r.yaml": header + "bake:\n  files:\n    - {path: /etc/x, source: ../../etc/shadow}\n"},
			[]string{"r.yaml:5:30: bake.files[0].source:", "leaves the recipe's directory"}},
		{"secret file escaping the recipe's directory", map[string]string{"r.yaml": header + "boot:\n  files:\n    - {path: /etc/x, secret: file:../x}\n"},
			[]string{"boot.files[0].secret:", "leaves the recipe's directory"}},
		{"non-UTF-8 input", map[string]string{"r.yaml": header + "description: caf\xe9\n"},
			[]string{"r.yaml:3:17:", "not valid UTF-8"}},
		{"YAML syntax", map[string]string{"r.yaml": header + "bake: [\n"},
			[]string{"r.yaml:", "YAML syntax"}},
		{"duplicate key", map[string]string{"r.yaml": header + "name: again\n"},
			[]string{"r.yaml:3:1: name:", `key "name" appears twice`}},
		{"not a mapping", map[string]string{"r.yaml": "- a\n- b\n"},
			[]string{"r.yaml:1:1:", "a recipe is a mapping"}},
		{"empty file", map[string]string{"r.yaml": ""},
			[]string{"r.yaml:", "recipe is empty"}},
		{"two documents", map[string]string{"r.yaml": header + "---\nname: x\n"},
			[]string{"r.yaml:3:1:", "one YAML document"}},
		{"boolean for string", map[string]string{"r.yaml": header + "description: yes\nbase: true\n"},
			[]string{"r.yaml:4:7: base:", "expected a string, got the boolean true"}},
		{"bad mode", map[string]string{"r.yaml": header + "bake:\n  files:\n    - {path: /etc/x, content: x, mode: 999}\n"},
			[]string{"r.yaml:5:40: bake.files[0].mode:", `invalid mode "999"`}},
		{"bad size", map[string]string{"r.yaml": header + "disk: {size: 4 gigs}\n"},
			[]string{"r.yaml:3:14: disk.size:", `invalid size "4 gigs"`}},
		{"relative guest path", map[string]string{"r.yaml": header + "bake:\n  files:\n    - {path: etc/x, content: x}\n"},
			[]string{"r.yaml:5:14: bake.files[0].path:", "must be absolute"}},
		{"URL base without checksum", map[string]string{"r.yaml": header + "base: https://images.example.com/x.qcow2\n"},
			[]string{"r.yaml:3:7: base:", "needs a checksum"}},
		{"two roles of one kind", map[string]string{"r.yaml": header + "roles:\n  - app-host: {command: x}\n  - app-host: {command: y}\n"},
			[]string{"r.yaml:5:5: roles[1]:", "already listed"}},
		{"bad hostname pattern", map[string]string{"r.yaml": header + "boot: {hostname: \"web-{host}\"}\n"},
			[]string{"r.yaml:3:18: boot.hostname:", "unknown placeholder {host}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFiles(t, c.files)
			_, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
			if err == nil {
				t.Fatal("bad recipe accepted")
			}
			msg := strings.ReplaceAll(err.Error(), dir+"/", "")
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			var el ErrorList
			var e *Error
			if !errors.As(err, &el) && !errors.As(err, &e) {
				t.Errorf("error is %T, want a positioned recipes error", err)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.yaml")
	big := header + "description: \"" + strings.Repeat("x", 10<<20) + "\"\n"
	if err := os.WriteFile(p, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "byte limit") || !strings.Contains(err.Error(), p) {
		t.Fatalf("10 MB recipe: want a size error naming the file, got %v", err)
	}
}

// TestAllErrorsReported: one run lists every problem, not just the first.
func TestAllErrorsReported(t *testing.T) {
	dir := writeFiles(t, map[string]string{"r.yaml": header + "bake:\n  pakages: [x]\n  comands: [y]\ndisk: {format: vmdk}\n"})
	_, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
	var el ErrorList
	if !errors.As(err, &el) || len(el) != 2 {
		t.Fatalf("want 2 decode errors, got %v", err)
	}
}

func TestAliasBomb(t *testing.T) {
	doc := header + "description: x\nbake:\n  packages: &a [a, a, a, a, a, a, a, a, a, a]\n"
	prev := "a"
	for i := 0; i < 7; i++ {
		name := string(rune('b' + i))
		doc += "x" + name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	dir := writeFiles(t, map[string]string{"r.yaml": doc})
	if _, err := Load(filepath.Join(dir, "r.yaml")); err == nil {
		t.Fatal("alias bomb accepted")
	}
}

func TestExtendsMerge(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base/common.yaml": `apiVersion: kiln/v1
name: common
roles:
  - app-host: {name: web, port: 8080, command: /bin/web}
bake:
  packages: [htop]
disk: {size: 8GiB, firmware: [bios, uefi]}
`,
		"web.yaml": `apiVersion: kiln/v1
name: web
extends: base/common.yaml
roles:
  - app-host: {port: 9090}
  - cron-runner: {jobs: [{name: j, schedule: daily, command: "true"}]}
bake:
  packages: [curl]
disk: {firmware: [uefi]}
`,
	})
	r, err := LoadAndCheck(filepath.Join(dir, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "web" || r.Extends != "base/common.yaml" {
		t.Errorf("name/extends = %q/%q", r.Name, r.Extends)
	}
	if got := strings.Join(r.Bake.Packages, ","); got != "htop,curl" {
		t.Errorf("packages append: got %s", got)
	}
	if r.Disk.Size != 8<<30 || strings.Join(r.Disk.Firmware, ",") != "uefi" {
		t.Errorf("disk merge: %+v", r.Disk)
	}
	if len(r.Roles) != 2 {
		t.Fatalf("roles: %d", len(r.Roles))
	}
	app := r.Roles[0].Params.(*AppHost)
	if app.Name != "web" || app.Port != 9090 || app.Command.Shell != "/bin/web" {
		t.Errorf("role params merge: %+v", app)
	}
	// Positions point at the file each value came from.
	if p := r.Position("roles[0].app-host.command"); !strings.HasSuffix(p.File, "common.yaml") || p.Line != 4 {
		t.Errorf("position of inherited value: %v", p)
	}
	if p := r.Position("roles[0].app-host.port"); !strings.HasSuffix(p.File, "web.yaml") || p.Line != 5 {
		t.Errorf("position of overriding value: %v", p)
	}
	if got := len(r.Files()); got != 2 {
		t.Errorf("Files() = %v", r.Files())
	}
}

func TestErrorInExtendedFileNamesThatFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"parent.yaml": "apiVersion: kiln/v1\nname: p\nbake:\n  packages: [\"Bad Name\"]\n",
		"r.yaml":      header + "extends: parent.yaml\n",
	})
	_, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
	if err == nil || !strings.Contains(err.Error(), "parent.yaml:4:14: bake.packages[0]") {
		t.Fatalf("want the error placed in parent.yaml, got %v", err)
	}
}

func TestDefaults(t *testing.T) {
	dir := writeFiles(t, map[string]string{"r.yaml": header})
	r, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Base != "debian:trixie" || r.Disk.Format != "qcow2" || r.Disk.Compression != "zstd" ||
		r.Disk.Size != 4<<30 || strings.Join(r.Disk.Firmware, ",") != "bios,uefi" || r.Bake.Mode != "auto" || r.Boot.Hostname != "{instance}" {
		t.Fatalf("defaults: %+v", r)
	}
}

// TestLoadData: a recipe held in memory loads like a file of that name:
// errors carry the name with line and column, relative references resolve
// beside it, and nothing is read from the name itself.
func TestLoadData(t *testing.T) {
	dir := writeFiles(t, map[string]string{"motd": "hello\n"})
	name := filepath.Join(dir, "recipe_content")
	r, err := LoadData(name, []byte(header+"bake:\n  files:\n    - {path: /etc/motd, source: motd}\n"))
	if err != nil {
		t.Fatal(err)
	}
	Default(r)
	if err := Validate(r); err != nil {
		t.Fatal(err)
	}
	p, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 1 || string(p.Files[0].Content) != "hello\n" {
		t.Errorf("source: beside the name: got %+v", p.Files)
	}
	if _, err := LoadData("recipe_content", []byte(header+"bake:\n  pakages: [x]\n")); err == nil || !strings.HasPrefix(err.Error(), "recipe_content:4:3: ") {
		t.Errorf("unknown key: want an error at recipe_content:4:3, got %v", err)
	}
	if _, err := LoadData("recipe_content", nil); err == nil || !strings.Contains(err.Error(), "recipe_content:1:1: recipe is empty") {
		t.Errorf("empty: got %v", err)
	}
	if _, err := LoadData("recipe_content", []byte(header+strings.Repeat("#", MaxRecipeSize))); err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Errorf("too large: got %v", err)
	}
}
