package recipe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSource(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(web, []byte("apiVersion: kiln/v1\nname: web\nbase: debian:trixie\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("file with overrides", func(t *testing.T) {
		p, err := Source{Path: web, Base: "debian:bookworm", DiskSize: "8GiB"}.Plan()
		if err != nil {
			t.Fatal(err)
		}
		if p.Recipe.Base != "debian:bookworm" || p.Recipe.Disk.Size.String() != "8GiB" {
			t.Errorf("overrides not applied: base %s, size %s", p.Recipe.Base, p.Recipe.Disk.Size)
		}
		plain, err := Source{Path: web}.Plan()
		if err != nil {
			t.Fatal(err)
		}
		if plain.ImageKey == p.ImageKey {
			t.Errorf("overrides do not change the image key")
		}
	})
	t.Run("inline", func(t *testing.T) {
		p, err := Source{Content: "apiVersion: kiln/v1\nname: inline\n"}.Plan()
		if err != nil || p.Recipe.Name != "inline" || p.Recipe.File() != InlineName {
			t.Fatalf("plan %+v, %v", p, err)
		}
	})
	for _, c := range []struct {
		name string
		src  Source
		want string
	}{
		{"neither", Source{}, "recipe or recipe_content is required"},
		{"both", Source{Path: web, Content: "x"}, "exclusive"},
		{"bad base", Source{Path: web, Base: "gentoo"}, "base: "},
		{"bad size", Source{Path: web, DiskSize: "big"}, "disk_size: "},
		{"missing file", Source{Path: filepath.Join(dir, "nope.yaml")}, "nope.yaml: cannot read recipe"},
		{"recipe error", Source{Content: "apiVersion: kiln/v1\nname: Web\n"}, "recipe_content:2:7: name: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.src.Plan()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want an error with %q, got %v", c.want, err)
			}
		})
	}
}
