package builder

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestDepcheck keeps builder at the top of the library: it may use every
// package below it, and only the CLI, the examples and the benchmarks may
// use it (manifest, seed, boot and imagetest serve the registry, fleets and
// the Packer plugin without the bake pipeline).
func TestDepcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("depcheck skipped with -short")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, testutil.Module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{"cmd/kiln": true, "examples": true, "hack/bench": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], testutil.Module+"/")
		for _, imp := range f[1:] {
			if imp == testutil.Module+"/builder" && !allowed[pkg] {
				t.Errorf("%s imports builder: only the CLI, the examples and the benchmarks may", pkg)
			}
		}
	}
}
