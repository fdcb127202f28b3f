package view

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// view sits above deploy: it shows what the controller knows and draws it
// with deploy's topology. It imports deploy, deploy/health, internal
// packages and the standard library, nothing else, and its tests the same
// (the page is plain HTML, CSS and JavaScript; the browser test drives
// Chromium through internal/testchromium, which speaks the DevTools
// protocol itself). Through deploy it depends on what deploy
// does, never on builder or cmd. deploy cannot import view (a cycle).
func TestDepcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("depcheck skipped with -short")
	}
	goList := func(args ...string) []string {
		out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.Fields(string(out))
	}
	var allowed []string
	for _, p := range append(goList("-deps", "-f", "{{.ImportPath}}", "..", "../health"), goList("-f", "{{.ImportPath}}", "../../internal/...")...) {
		if rel, ok := strings.CutPrefix(p, testutil.Module+"/"); ok {
			if strings.HasPrefix(rel, "builder") || strings.HasPrefix(rel, "cmd") {
				t.Fatalf("deploy depends on %s: view, above it, must never depend on builder or cmd", p)
			}
			allowed = append(allowed, rel)
		}
	}
	testutil.CheckImports(t, allowed...)

	direct := goList("-f", `{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}`, ".")
	for _, p := range direct {
		rel, kiln := strings.CutPrefix(p, testutil.Module+"/")
		switch {
		case kiln && rel != "deploy" && rel != "deploy/health" && !strings.HasPrefix(rel, "internal/"):
			t.Errorf("view imports %s: only deploy, deploy/health and internal packages", p)
		case !kiln && strings.Contains(strings.Split(p, "/")[0], "."):
			t.Errorf("view imports %s: outside kiln, the standard library only", p)
		}
	}
}
