package recipes

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: no input makes the loader panic, and every failure is a recipe
// error placed at a line and column: within the input when it names the
// fuzzed file, and at least 1:1 wherever it points.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/*.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{header, header + "roles: [database]\n", header + "bake: {packages: [a, &x b, *x]}\n",
		"a: &a [*a]\n", header + "extends: r.yaml\n", "\xff\xfe", header + "disk: {size: 99999999999999999999GiB}\n",
		"", "# nothing but a comment\n",
		// syntax errors, which the loader recovers from
		header + "bake:\n  packages: [htop\n  files: []\ndisk: {format: vmdk}\n", "apiVersion kiln/v1\nname: web\n",
		header + "bake:\n\tpackages: [x]\nboot: {timezone: mars}\n", "apiVersion: 'kiln/v1\r\nname: web\r\n",
		header + "bake:\n  packages: &pk [htop\nboot:\n  commands: *pk\n", header + "extends: \"p.yaml\nroles: [database]\n",
		"{apiVersion: kiln/v1,\nname: x\n", header + "---\nname: [\n", header + "roles:\n  - app-host:\n      port: 80\n     command: x\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(fuzzDir, "r.yaml")
		r, err := load(p, data)
		var plan *Plan
		if err == nil {
			Default(r)
			if err = Validate(r); err == nil {
				plan, err = Compile(r)
			}
		}
		if err != nil {
			checkRecipeError(t, err, p, data)
			return
		}
		if _, err := plan.Seed(Instance{}, StageFull, PlaceholderResolver()); err != nil {
			var re *Error
			var el ErrorList
			if !errors.As(err, &re) && !errors.As(err, &el) {
				// Seeds may fail on values only cloud-init's schema refuses;
				// those must still be explained, never a panic.
				if err.Error() == "" {
					t.Fatal("empty error")
				}
			}
		}
	})
}

// fuzzDir is where fuzzed recipes pretend to live: extends and source
// references resolve against an empty directory.
var fuzzDir = os.TempDir() + "/kiln-fuzz-nonexistent"

// checkRecipeError fails unless err is made of recipe errors, each with a
// message and a position: a file, a line and a column of at least 1, and,
// in the fuzzed file, a line the input has.
func checkRecipeError(t *testing.T, err error, file string, data []byte) {
	t.Helper()
	var el ErrorList
	var re *Error
	switch {
	case errors.As(err, &el):
	case errors.As(err, &re):
		el = ErrorList{re}
	default:
		t.Fatalf("not a recipe error (%T): %v", err, err)
	}
	// YAML breaks lines at \n, \r\n, \r, NEL, LS and PS.
	lines := 1 - bytes.Count(data, []byte("\r\n"))
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		lines += bytes.Count(data, []byte(brk))
	}
	for _, e := range el {
		switch {
		case e.Msg == "":
			t.Fatalf("error without a message: %q", e.Error())
		case e.Pos.File == "" || e.Pos.Line < 1 || e.Pos.Col < 1:
			t.Fatalf("error without a file, line and column: %q (%+v)", e.Error(), e.Pos)
		case e.Pos.File == file && e.Pos.Line > lines:
			t.Fatalf("error at line %d of a %d-line input: %q", e.Pos.Line, lines, e.Error())
		}
	}
}
