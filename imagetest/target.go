package imagetest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// Target is what to test: an image, and what its instance seed and checks
// come from.
type Target struct {
	// Image is the image file.
	Image string
	// Plan is the recipe the instance seed is made from. Nil tests a bare
	// instance: a seed with a host name and kiln's test user only.
	Plan *recipes.Plan
	// Checks are run after cloud-init is done.
	Checks []manifest.Check
	// Firmware the image boots under (bios, uefi).
	Firmware []string
	// Notes say where the seed and checks come from, and what the test
	// cannot prove without the recipe.
	Notes []string
}

// ForPlan is the target of an image just baked from plan.
func ForPlan(image string, plan *recipes.Plan) *Target {
	return &Target{Image: image, Plan: plan, Checks: Checks(plan), Firmware: plan.Recipe.Disk.Firmware}
}

// Checks are plan's checks in manifest form, each marked NeedsBoot when
// it means something only with the recipe's own instance seed.
func Checks(plan *recipes.Plan) []manifest.Check {
	out := make([]manifest.Check, 0, len(plan.Checks))
	for _, c := range plan.Checks {
		mc := manifest.Check{Name: c.Name, Origin: c.Origin, NeedsBoot: plan.NeedsBoot(c), Timeout: manifest.Duration(c.Timeout.D())}
		switch {
		case c.HTTP != nil:
			mc.HTTP = &manifest.HTTPCheck{Port: c.HTTP.Port, Path: c.HTTP.Path, Status: c.HTTP.Status, Contains: c.HTTP.Contains}
		case c.TCP != nil:
			mc.TCP = &manifest.TCPCheck{Port: c.TCP.Port}
		case c.Command != nil:
			mc.Command = &manifest.CommandCheck{Run: c.Command.Run.String(), ExitCode: c.Command.ExitCode, Contains: c.Command.Contains}
		}
		out = append(out, mc)
	}
	return out
}

// ErrNoImage is wrapped by Resolve when the image file does not exist.
var ErrNoImage = errors.New("no such image")

// Resolve works out how to test image. recipe, when not empty, is the
// recipe to make the instance seed from (kiln test --recipe). Otherwise the
// manifest beside the image names the recipe it was baked from; it is used
// when it loads and its digest matches the manifest's (or, after
// boot-only edits, its image key does). Without a usable recipe the test
// runs a bare instance with the manifest's checks, and Notes say which
// checks cannot be meaningful.
func Resolve(image, recipe string) (*Target, error) {
	st, err := os.Stat(image)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoImage, image)
		}
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not an image", image)
	}
	mpath := manifest.PathFor(image)
	m, err := manifest.Read(mpath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if recipe != "" {
		plan, err := recipes.LoadPlan(recipe)
		if err != nil {
			return nil, err
		}
		t := ForPlan(image, plan)
		if m != nil && plan.ImageKey != m.Recipe.ImageKey {
			t.Notes = append(t.Notes, fmt.Sprintf("%s bakes a different image than %s (the image was baked from %s): its checks may not apply", recipe, image, orUnknown(m.Recipe.File)))
		}
		return t, nil
	}
	if m == nil {
		return &Target{Image: image, Notes: []string{fmt.Sprintf(
			"%s has no manifest beside it (%s) and no recipe was given (--recipe): testing a bare instance — cloud-init and the test login only, no checks", image, mpath)}}, nil
	}
	t := &Target{Image: image, Checks: m.Checks, Firmware: m.Disk.Firmware}
	why := ""
	switch path := m.RecipePath(mpath); {
	case path == "":
		why = "the manifest names no recipe file"
	default:
		if _, err := os.Stat(path); err != nil {
			why = fmt.Sprintf("its recipe %s is not there", path)
			break
		}
		plan, err := recipes.LoadPlan(path)
		switch {
		case err != nil:
			why = fmt.Sprintf("its recipe %s does not load (%v)", path, firstLine(err.Error()))
		case plan.Digest == m.Recipe.Digest:
			t.Plan, t.Checks = plan, Checks(plan)
			t.Notes = append(t.Notes, "instance seed and checks from "+path)
			return t, nil
		case plan.ImageKey == m.Recipe.ImageKey:
			t.Plan, t.Checks = plan, Checks(plan)
			t.Notes = append(t.Notes, fmt.Sprintf("%s changed since the bake, but not what shapes the image: testing with its current boot section and checks", path))
			return t, nil
		default:
			why = fmt.Sprintf("its recipe %s has changed since the bake (digest %s, the image's %s)", path, short(plan.Digest), short(m.Recipe.Digest))
		}
	}
	var skipped []string
	for _, c := range t.Checks {
		if c.NeedsBoot {
			skipped = append(skipped, c.Name)
		}
	}
	note := fmt.Sprintf("testing without the recipe: %s. The instance seed has only a host name and the test login, not what the recipe configures at first boot (users, files, secrets)", why)
	if len(skipped) > 0 {
		note += fmt.Sprintf("; these checks cannot be meaningful without it and are skipped: %q. Give the recipe with --recipe", skipped)
	}
	t.Notes = append(t.Notes, note)
	return t, nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown recipe"
	}
	return s
}

// defaultBootTimeout is the default bound on the wait for a guest to come up.
const defaultBootTimeout = 5 * time.Minute
