package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/recipes"
)

// exampleFiles are the example recipes: every YAML file here but the
// fleets (fleet*.yaml), which the deploy package's tests load.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("*.yaml")
	var files []string
	for _, f := range all {
		if !strings.HasPrefix(f, "fleet") {
			files = append(files, f)
		}
	}
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	return files
}

// TestEveryRoleHasAnExample: a role without an example is a role nobody has
// shown working.
func TestEveryRoleHasAnExample(t *testing.T) {
	used := map[string]bool{}
	for _, f := range exampleFiles(t) {
		plan, err := recipes.LoadPlan(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range plan.Recipe.Roles {
			used[r.Name] = true
		}
	}
	for _, name := range recipes.RoleNames() {
		if !used[name] {
			t.Errorf("role %s has no example recipe", name)
		}
		if _, err := os.Stat(name + ".yaml"); err != nil {
			t.Errorf("examples/%s.yaml is missing", name)
		}
	}
}

// TestCloudInitAcceptsExamples renders every stage of every example and has
// the Debian cloud-init package's own `cloud-init schema` check each one.
func TestCloudInitAcceptsExamples(t *testing.T) {
	testutil.Integration(t)
	cloudInit := testutil.NeedTool(t, "cloud-init")
	secrets := recipes.PlaceholderResolver()
	for _, f := range exampleFiles(t) {
		plan, err := recipes.LoadPlan(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, stage := range []recipes.Stage{recipes.StageBoot, recipes.StageBake, recipes.StageFull} {
			t.Run(f+"/"+string(stage), func(t *testing.T) {
				seed, err := plan.Seed(recipes.Instance{}, stage, secrets)
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(t.TempDir(), "user-data")
				if err := os.WriteFile(p, seed.UserData, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(cloudInit, "schema", "-c", p).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
					t.Fatalf("cloud-init schema rejected %s (%s): %v\n%s\n--- user-data:\n%s", f, stage, err, out, seed.UserData)
				}
			})
		}
	}
}

// TestExamplesDeterministic: the rendered documents of every
// example are stable across two renders (what makes seeds reproducible).
func TestExamplesDeterministic(t *testing.T) {
	for _, f := range exampleFiles(t) {
		var outs []string
		for i := 0; i < 2; i++ {
			plan, err := recipes.LoadPlan(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := plan.Seed(recipes.Instance{Name: "x"}, recipes.StageFull, recipes.PlaceholderResolver())
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, string(s.UserData)+string(s.MetaData)+string(s.NetworkConfig))
		}
		if outs[0] != outs[1] {
			t.Errorf("%s renders differently twice", f)
		}
	}
}
