package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kiln deploy scale edits the fleet file: the set's capacity changes,
// comments and the other sets stay, and a capacity the set cannot have is
// refused with the file left as it was.
func TestSetCapacity(t *testing.T) {
	src, err := os.ReadFile("../examples/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"proxy.yaml", "app-host.yaml"} {
		b, _ := os.ReadFile(filepath.Join("../examples", f))
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	p := filepath.Join(dir, "fleet.yaml")
	os.WriteFile(p, src, 0o644)
	if err := SetCapacity(p, "web", 7); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFleet(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Set("web").Capacity != 7 || f.Set("edge").Capacity != 3 {
		t.Errorf("capacities: web %d, edge %d", f.Set("web").Capacity, f.Set("edge").Capacity)
	}
	after, _ := os.ReadFile(p)
	if !strings.Contains(string(after), "scaling in removes the highest numbers first") || !strings.Contains(string(after), "instances edge-0, edge-1, edge-2") {
		t.Errorf("comments lost:\n%s", after)
	}
	// An availability set cannot have 0; the file stays as it was.
	if err := SetCapacity(p, "edge", 0); err == nil || !strings.Contains(err.Error(), "AvailabilitySet") {
		t.Errorf("capacity 0 of an availability set: %v", err)
	}
	if again, _ := os.ReadFile(p); string(again) != string(after) {
		t.Error("a refused scale changed the file")
	}
	if err := SetCapacity(p, "nosuch", 1); err == nil {
		t.Error("scaling a set that is not there succeeded")
	}
	// A new image: written as a string, comments kept; one that does not
	// load leaves the file as it was.
	if err := SetImage(p, "web", "oci://registry.example.com/team/web@sha256:"+strings.Repeat("0", 64)); err != nil {
		t.Fatal(err)
	}
	if f, err := LoadFleet(p); err != nil || f.Set("web").Image.Remote.String() != "oci://registry.example.com/team/web@sha256:"+strings.Repeat("0", 64) {
		t.Errorf("image after SetImage: %v", err)
	}
	before, _ := os.ReadFile(p)
	if err := SetImage(p, "web", "./missing.qcow2"); err == nil || !strings.Contains(err.Error(), "missing.qcow2") {
		t.Errorf("a missing image: %v", err)
	}
	if again, _ := os.ReadFile(p); string(again) != string(before) || !strings.Contains(string(again), "scaling in removes the highest numbers first") {
		t.Error("a refused image changed the file, or comments were lost")
	}
}
