package imagetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

const dbRecipe = `apiVersion: kiln/v1
name: db
roles:
  - database:
      listen: ["*"]
      users: [{name: app, password: env:APP_DB_PASSWORD}]
      databases: [{name: appdb, owner: app}]
checks:
  - command: {run: "true"}
`

// setup writes a recipe and an image with a manifest naming it, as kiln
// bake leaves them, and returns the image path.
func setup(t *testing.T, recipe string) (string, *recipes.Plan) {
	t.Helper()
	dir := t.TempDir()
	rp := filepath.Join(dir, "db.yaml")
	os.WriteFile(rp, []byte(recipe), 0o644)
	plan, err := recipes.LoadPlan(rp)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	img := filepath.Join(out, "db.qcow2")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	mp := manifest.PathFor(img)
	m := &manifest.Manifest{
		Kiln:      manifest.Kiln{Version: "dev", ImageLayout: "x"},
		Recipe:    manifest.Recipe{Name: "db", File: manifest.RelativeFile(rp, mp), Digest: plan.Digest, ImageKey: plan.ImageKey},
		Base:      manifest.Base{Ref: "debian:bookworm", Kind: manifest.BasePackages},
		Disk:      manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios"}, VirtualSize: 1 << 30, FileSize: 1 << 20},
		Artifacts: []manifest.Artifact{{Name: "db.qcow2", Size: 1 << 20, SHA256: "sha256:" + strings.Repeat("0", 64)}},
		Checks:    Checks(plan),
		Build:     manifest.Build{Mode: "offline"},
	}
	if err := manifest.Write(mp, m); err != nil {
		t.Fatal(err)
	}
	return img, plan
}

func TestChecksNeedBoot(t *testing.T) {
	_, plan := setup(t, dbRecipe)
	cs := Checks(plan)
	var needs, free []string
	for _, c := range cs {
		if c.NeedsBoot {
			needs = append(needs, c.Origin)
		} else {
			free = append(free, c.Origin)
		}
	}
	// The database role makes its users at first boot; the recipe's own
	// check does not depend on a boot section the recipe does not have.
	if len(needs) == 0 || needs[0] != "roles[0].database" || len(free) != 1 || free[0] != "checks[0]" {
		t.Errorf("needs boot %v, not %v", needs, free)
	}
}

func TestResolve(t *testing.T) {
	t.Run("recipe from the manifest", func(t *testing.T) {
		img, plan := setup(t, dbRecipe)
		tg, err := Resolve(img, "")
		if err != nil || tg.Plan == nil || tg.Plan.Digest != plan.Digest || len(tg.Checks) != len(plan.Checks) {
			t.Fatalf("%+v %v", tg, err)
		}
	})
	t.Run("boot-only edit", func(t *testing.T) {
		img, _ := setup(t, dbRecipe)
		rp := filepath.Join(filepath.Dir(filepath.Dir(img)), "db.yaml")
		os.WriteFile(rp, []byte(dbRecipe+"boot: {hostname: \"db-{index}\"}\n"), 0o644)
		tg, err := Resolve(img, "")
		if err != nil || tg.Plan == nil || !strings.Contains(strings.Join(tg.Notes, " "), "changed since the bake, but not what shapes the image") {
			t.Fatalf("%+v %v", tg, err)
		}
	})
	t.Run("recipe changed", func(t *testing.T) {
		img, _ := setup(t, dbRecipe)
		rp := filepath.Join(filepath.Dir(filepath.Dir(img)), "db.yaml")
		os.WriteFile(rp, []byte(dbRecipe+"bake: {packages: [htop]}\n"), 0o644)
		tg, err := Resolve(img, "")
		notes := strings.Join(tg.Notes, " ")
		if err != nil || tg.Plan != nil || !strings.Contains(notes, "has changed since the bake") || !strings.Contains(notes, "cannot be meaningful") || !strings.Contains(notes, "--recipe") {
			t.Fatalf("%+v %v", tg, err)
		}
		if len(tg.Checks) == 0 || !tg.Checks[0].NeedsBoot {
			t.Errorf("manifest checks %+v", tg.Checks)
		}
	})
	t.Run("recipe gone", func(t *testing.T) {
		img, _ := setup(t, dbRecipe)
		os.Remove(filepath.Join(filepath.Dir(filepath.Dir(img)), "db.yaml"))
		tg, err := Resolve(img, "")
		if err != nil || tg.Plan != nil || !strings.Contains(strings.Join(tg.Notes, " "), "is not there") {
			t.Fatalf("%+v %v", tg, err)
		}
	})
	t.Run("--recipe", func(t *testing.T) {
		img, _ := setup(t, dbRecipe)
		other := filepath.Join(t.TempDir(), "other.yaml")
		os.WriteFile(other, []byte("apiVersion: kiln/v1\nname: other\n"), 0o644)
		tg, err := Resolve(img, other)
		if err != nil || tg.Plan == nil || tg.Plan.Recipe.Name != "other" || !strings.Contains(strings.Join(tg.Notes, " "), "bakes a different image") {
			t.Fatalf("%+v %v", tg, err)
		}
		if _, err := Resolve(img, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
			t.Error("a missing --recipe was accepted")
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "x.qcow2")
		os.WriteFile(img, make([]byte, 1<<20), 0o644)
		tg, err := Resolve(img, "")
		if err != nil || tg.Plan != nil || len(tg.Checks) != 0 || !strings.Contains(strings.Join(tg.Notes, " "), "no manifest") {
			t.Fatalf("%+v %v", tg, err)
		}
	})
	t.Run("no image", func(t *testing.T) {
		if _, err := Resolve(filepath.Join(t.TempDir(), "x.qcow2"), ""); err == nil || !strings.Contains(err.Error(), "no such image") {
			t.Fatal(err)
		}
	})
}
