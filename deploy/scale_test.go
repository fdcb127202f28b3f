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
}
