package controller

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// controller sits above deploy and its decision packages (health,
// autoscale, upgrade, repair), the load balancer (lb) and the view's data
// model (view), and below cmd: it may use them, what they use and internal
// packages; never builder nor cmd.
func TestDepcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("depcheck skipped with -short")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "..", "../health", "../autoscale", "../upgrade", "../repair", "../lb", "../view").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var allowed []string
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, testutil.Module+"/"); ok {
			if strings.HasPrefix(rel, "builder") || strings.HasPrefix(rel, "cmd") {
				t.Fatalf("a package under the controller depends on %s", p)
			}
			allowed = append(allowed, rel)
		}
	}
	// guestssh: the controller logs in to the balancer VMs it runs.
	allowed = append(allowed, "internal/testutil", "internal/guestssh")
	testutil.CheckImports(t, allowed...)
}
