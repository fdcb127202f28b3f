package builder

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/manifest"
)

// lockPreferences is where a locked base's apt pins live while the image
// is built (sysprep removes it: pins in a golden image would hold back
// every later upgrade of the instances).
const lockPreferences = "/etc/apt/preferences.d/kiln-lock"

// PinPriority 1001 makes apt install the pinned version even over a newer
// candidate, and downgrade to it (apt_preferences(5)).
func preferencesFor(pins []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by kiln from the recipe's package lock; removed before the image is sealed.\n")
	for _, pin := range pins {
		name, version, _ := strings.Cut(pin, "=")
		fmt.Fprintf(&b, "\nPackage: %s\nPin: version %s\nPin-Priority: 1001\n", name, version)
	}
	return b.Bytes()
}

// checkLock fails a locked bake whose packages are not exactly the lock's,
// naming each package and what to do.
func (b *Builder) checkLock(installed []manifest.Package) error {
	l := b.opts.Lock
	if l == nil {
		return nil
	}
	d := l.Drift(installed)
	if d.Empty() {
		return nil
	}
	var lines []string
	for _, c := range d.Changed {
		lines = append(lines, fmt.Sprintf("%s (%s): locked at %s, but the mirror offers %s", c.Name, c.Arch, c.Want, c.Got))
	}
	for _, p := range d.Unlocked {
		lines = append(lines, fmt.Sprintf("%s %s (%s): installed, but not in the lock", p.Name, p.Version, p.Arch))
	}
	for _, p := range d.Missing {
		lines = append(lines, fmt.Sprintf("%s %s (%s): locked, but no longer installed", p.Name, p.Version, p.Arch))
	}
	var hint []string
	if len(d.Changed) > 0 {
		hint = append(hint, "the mirror no longer has the locked versions: point --mirror (and --security-mirror) at a snapshot of the archive taken when the lock was (its releases' dates), or accept today's versions with kiln lock update")
	}
	if len(d.Unlocked)+len(d.Missing) > 0 {
		hint = append(hint, "the recipe's packages changed since it was locked: run kiln lock update")
	}
	return fmt.Errorf("%s: the image does not hold exactly the locked packages:\n    %s\n%s", b.opts.LockFile, strings.Join(lines, "\n    "), strings.Join(hint, "; "))
}

// aptReleases reads the Release files apt fetched for the tree's sources,
// before sysprep removes the lists: which state of the archive the image's
// packages came from. Each mirror of an archive serves the same file.
func aptReleases(r root) ([]manifest.Release, error) {
	var out []manifest.Release
	for _, pattern := range []string{"*_InRelease", "*_Release"} {
		files, err := filepath.Glob(filepath.Join(r.dir, "var/lib/apt/lists", pattern))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			rel := manifest.Release{SHA256: digest.Bytes(b).String()}
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() && (rel.Suite == "" || rel.Date == "") {
				k, v, ok := strings.Cut(sc.Text(), ":")
				switch {
				case !ok:
				case k == "Suite":
					rel.Suite = strings.TrimSpace(v)
				case k == "Date":
					rel.Date = strings.TrimSpace(v)
				}
			}
			if rel.Suite == "" {
				continue // not a Release file apt would have used
			}
			out = append(out, rel)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Suite < out[j].Suite })
	return out, nil
}
