package deploy

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// deploy sits above recipes, registry, manifest, seed and iso, and below
// cmd: it may use those, what they use, internal helpers, and the pure
// decision packages under it (health, autoscale, upgrade, repair: the
// fleet file holds their settings); never builder (the bake pipeline), cmd,
// nor the packages that sit above it (view, controller).
func TestDepcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("depcheck skipped with -short")
	}
	allowed := []string{"deploy/health", "deploy/autoscale", "deploy/upgrade", "deploy/repair"}
	for _, args := range [][]string{
		{"list", "-deps", "-f", "{{.ImportPath}}", "../recipes", "../registry", "../manifest", "../seed", "../iso"},
		{"list", "-f", "{{.ImportPath}}", "../internal/..."}, // internal packages themselves, not what they use
	} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, p := range strings.Fields(string(out)) {
			if rel, ok := strings.CutPrefix(p, testutil.Module+"/"); ok {
				if strings.HasPrefix(rel, "builder") || strings.HasPrefix(rel, "cmd") {
					t.Fatalf("recipes, registry or manifest depend on %s: deploy, above them, must never depend on builder or cmd", p)
				}
				allowed = append(allowed, rel)
			}
		}
	}
	testutil.CheckImports(t, allowed...)
}

// The Kubernetes and KubeVirt APIs are the KubeVirt export's business: no
// other file of deploy (the libvirt backend, reconcile, placement) uses them.
func TestDepcheckKubernetes(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			k8s := strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "kubevirt.io/") || strings.HasPrefix(p, "sigs.k8s.io/")
			if k8s && name != "kubevirt.go" && name != "kubevirt_test.go" {
				t.Errorf("%s imports %s: only kubevirt.go may use the Kubernetes APIs", name, p)
			}
		}
	}
}
