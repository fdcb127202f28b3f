package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/internal/testutil"
)

// kiln deploy as a user runs it, against a real libvirtd (the harness's,
// in its own mount namespace): plan says what would change (exit 3), apply
// does it, a second plan has nothing to do (exit 0), status lists the
// instances with their domains and forwarded ports, destroy leaves none.
// The image is a blank disk: the domains run, nothing boots — booting real
// guests is the deploy package's integration tests' job.
func TestDeployCLI(t *testing.T) {
	testutil.Integration(t)
	d := testlibvirt.Start(t, testlibvirt.Options{})
	dir := t.TempDir()
	smallImage(t, dir)
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte("apiVersion: kiln/v1\nname: web\nboot:\n  hostname: \"web-{index}\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(`apiVersion: kiln/v1
kind: AvailabilitySet
name: web
image: ./web.qcow2
recipe: ./web.yaml
capacity: 3
size: {memory: 128MiB}
network: {ports: [8080]}
hosts: ["`+d.URI+`"]
`), 0o644)
	env := []string{"KILN_CACHE_DIR=" + filepath.Join(dir, "cache")}

	r := run(t, dir, env, "deploy", "plan", "fleet.yaml")
	if r.code != exitPending || strings.Count(r.stdout, "+ create") != 3 {
		t.Fatalf("plan before apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "apply", "fleet.yaml"); r.code != 0 || !strings.Contains(r.stdout, "3 changed") {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "plan", "fleet.yaml"); r.code != 0 || !strings.Contains(r.stdout, "0 to change, 3 unchanged") {
		t.Fatalf("plan after apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, env, "deploy", "status", "fleet.yaml", "-O", "json")
	insts := envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any)
	if r.code != 0 || len(insts) != 3 {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for i, x := range insts {
		in := x.(map[string]any)
		meta := in["meta"].(map[string]any)
		ports, _ := in["ports"].(map[string]any)
		if in["state"] != "running" || meta["ordinal"] != float64(i) || meta["faultDomain"] != float64(i%3) || meta["updateDomain"] != float64(i) || ports["8080"] == nil {
			t.Errorf("instance %d: %v", i, in)
		}
	}
	if r = run(t, dir, env, "deploy", "destroy", "fleet.yaml", "web"); r.code != 0 {
		t.Fatalf("destroy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, env, "deploy", "status", "fleet.yaml", "-O", "json")
	if insts := envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any); len(insts) != 0 {
		t.Fatalf("after destroy: %v", insts)
	}
}
