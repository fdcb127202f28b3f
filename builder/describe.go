package builder

import (
	"fmt"
	"io/fs"

	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/internal/version"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// describe starts the manifest of an image baked from plan whose root
// filesystem is fsys: kiln, recipe, OS, packages and checks. The bake
// fills in base, disk, artifacts and build. requirePackages makes a
// missing dpkg database an error (package bases always have one).
func (b *Builder) describe(plan *recipes.Plan, fsys fs.FS, requirePackages bool) (*manifest.Manifest, error) {
	pkgs, err := installedPackages(fsys)
	if err != nil && requirePackages {
		return nil, fmt.Errorf("reading the package list: %w", err)
	}
	distro, release := osRelease(fsys)
	m := &manifest.Manifest{
		Kiln:     manifest.Kiln{Version: version.String(), ImageLayout: imageLayout},
		Recipe:   manifest.Recipe{Name: plan.Recipe.Name, Digest: plan.Digest, ImageKey: plan.ImageKey},
		OS:       manifest.OS{Distro: distro, Release: release, Kernel: kernelVersion(fsys)},
		Packages: pkgs,
		Checks:   imagetest.Checks(plan),
	}
	m.OS.CloudInit, m.OS.Systemd = m.Package("cloud-init"), m.Package("systemd")
	for _, r := range plan.Recipe.Roles {
		m.Recipe.Roles = append(m.Recipe.Roles, r.Name)
	}
	return m, nil
}

// nameRecipe makes the manifest at mpath name plan, the recipe the image
// was (re)baked from now: its file, relative to the manifest, its digest
// and checks. A boot-only change reuses a cached image whose manifest named
// the recipe as it was then.
func (b *Builder) nameRecipe(m *manifest.Manifest, plan *recipes.Plan, mpath string) {
	m.Recipe.Name, m.Recipe.Digest = plan.Recipe.Name, plan.Digest
	m.Recipe.File = manifest.RelativeFile(plan.Recipe.File(), mpath)
	m.Recipe.Roles = nil
	for _, r := range plan.Recipe.Roles {
		m.Recipe.Roles = append(m.Recipe.Roles, r.Name)
	}
	m.Checks = imagetest.Checks(plan)
}
