package builder

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln/internal/epoch"
	"github.com/kiln-project/kiln/manifest"
)

// treeEpoch is the SOURCE_DATE_EPOCH of an image made from tree: the one
// given to the builder, or else the tree's packagesEpoch. from says which
// (manifest.EpochFrom*).
func (b *Builder) treeEpoch(r root) (t time.Time, from string, err error) {
	if b.fixedEpoch {
		return b.epoch, b.givenEpochFrom(), nil
	}
	t, ok, err := packagesEpoch(r)
	if err != nil {
		return time.Time{}, "", err
	}
	if !ok {
		return epoch.Default, manifest.EpochFromDefault, nil
	}
	return t, manifest.EpochFromPackages, nil
}

// givenEpochFrom says where b.epoch came from: the environment, or the
// default (images baked in a VM do not derive one).
func (b *Builder) givenEpochFrom() string {
	if b.fixedEpoch {
		return manifest.EpochFromEnvironment
	}
	return manifest.EpochFromDefault
}

// packagesEpoch is the newest date among the packages installed in the
// tree: the time of their copyright files, which every Debian package
// ships (policy 12.5) and dpkg unpacks with the time the package was built
// with (its changelog's date, for reproducible packages). The same package
// set gives the same time, no file a package installed is newer, and it
// moves forward when any package is updated. ok is false when the tree has
// no copyright files at all.
func packagesEpoch(r root) (t time.Time, ok bool, err error) {
	files, err := filepath.Glob(filepath.Join(r.dir, "usr/share/doc/*/copyright"))
	if err != nil {
		return time.Time{}, false, err
	}
	for _, f := range files {
		st, err := os.Lstat(f)
		if err != nil {
			return time.Time{}, false, err
		}
		if st.Mode().IsRegular() && st.ModTime().After(t) {
			t, ok = st.ModTime().Truncate(time.Second).UTC(), true
		}
	}
	return t, ok, nil
}

// clampTimes sets every modification time in the tree that is after t to
// t, and symlinks' own times rather than their targets'. What the build
// wrote (maintainer scripts, kiln's own files) then carries the epoch, not
// the clock; what packages installed keeps its packaged time. The
// filesystem made from the tree pins the rest (disk.Assemble).
func clampTimes(r root, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.ModTime().After(t) {
			return nil
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("clamping the time of %s: %w", p, err)
		}
		return nil
	})
}

// epochEnv is a chroot's environment that has the tools run in it stamp
// what they make with t rather than the clock.
func epochEnv(t time.Time) []string {
	return []string{fmt.Sprintf("%s=%d", epoch.Var, t.Unix())}
}
