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
