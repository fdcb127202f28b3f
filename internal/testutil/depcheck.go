package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// Module is kiln's module path.
const Module = "github.com/kiln-project/kiln"

// CheckImports fails when the package in the current directory depends,
// directly or not, on a kiln package outside allowed (module-relative paths
// such as "cloudinit" or "internal/progress"). It keeps the layering of
// design.md honest; slow, so skipped under -short.
func CheckImports(t *testing.T, allowed ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("depcheck skipped with -short")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[Module+"/"+a] = true
	}
	lines := strings.Fields(string(out))
	self := lines[len(lines)-1] // go list -deps prints the package itself last
	for _, dep := range lines {
		if dep == self || !strings.HasPrefix(dep, Module+"/") || ok[dep] {
			continue
		}
		t.Errorf("%s must not depend on %s (allowed kiln packages: %v)", self, dep, allowed)
	}
}

// CheckExternalImports fails when the package in the current directory
// depends on a module outside kiln and the standard library that allowed
// does not name (prefixes such as "golang.org/x/crypto/"), or its tests
// import one outside allowed and testAllowed. It keeps test harnesses small.
func CheckExternalImports(t *testing.T, allowed, testAllowed []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("depcheck skipped with -short")
	}
	goList := func(args ...string) []string {
		out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return strings.Fields(string(out))
	}
	deps := goList("-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	tests := goList("-f", "{{join .TestImports \"\\n\"}}", ".")
	for _, c := range []struct {
		what    string
		pkgs    []string
		allowed []string
	}{
		{"the package", deps, allowed},
		{"its tests", tests, append(append([]string(nil), allowed...), testAllowed...)},
	} {
		for _, p := range c.pkgs {
			if strings.HasPrefix(p, Module+"/") || !strings.Contains(strings.Split(p, "/")[0], ".") {
				continue // kiln (CheckImports' business) or the standard library
			}
			ok := false
			for _, a := range c.allowed {
				ok = ok || strings.HasPrefix(p, a)
			}
			if !ok {
				t.Errorf("%s must not depend on %s (allowed outside kiln and std: %v)", c.what, p, c.allowed)
			}
		}
	}
}
