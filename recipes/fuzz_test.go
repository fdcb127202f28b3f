package recipes

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: no input makes the loader panic, and every failure is a recipe
// error that names the file (and, past parsing, a line).
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/*.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{header, header + "roles: [database]\n", header + "bake: {packages: [a, &x b, *x]}\n",
		"a: &a [*a]\n", header + "extends: r.yaml\n", "\xff\xfe", header + "disk: {size: 99999999999999999999GiB}\n"} {
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
			checkRecipeError(t, err, p)
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

func checkRecipeError(t *testing.T, err error, file string) {
	t.Helper()
	var el ErrorList
	var re *Error
	switch {
	case errors.As(err, &el):
		for _, e := range el {
			if e.Pos.File == "" || e.Msg == "" {
				t.Fatalf("error without position or message: %q", e.Error())
			}
		}
	case errors.As(err, &re):
		if re.Pos.File == "" || re.Msg == "" {
			t.Fatalf("error without position or message: %q", re.Error())
		}
	default:
		t.Fatalf("not a recipe error (%T): %v", err, err)
	}
}
