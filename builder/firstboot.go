package builder

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// First boot does no work the bake could have done. systemd runs units such
// as ldconfig.service, systemd-journal-catalog-update.service,
// systemd-hwdb-update.service and systemd-sysusers.service at boot when
// /etc/.updated or /var/.updated is missing or older than /usr
// (ConditionNeedsUpdate), which is every first boot of an image unless the
// bake settles it: rebuild the caches those units would, then write the
// stamps systemd-update-done.service would. kiln lint's first-boot-work rule
// checks the result.

// settleCaches does inside the tree what first boot would: the dynamic
// linker's cache, system users, the journal's message catalog, and udev's
// hardware database where the image has none.
func settleCaches(ctx context.Context, c *chroot) error {
	r := root{dir: c.dir}
	has := func(paths ...string) bool {
		for _, p := range paths {
			if r.exists(p) {
				return true
			}
		}
		return false
	}
	var steps [][]string
	if has("/usr/sbin/ldconfig", "/sbin/ldconfig") {
		steps = append(steps, []string{"ldconfig"})
	}
	// Packages create their users when installed; this catches any a
	// sysusers.d file declares that no maintainer script made.
	if has("/usr/bin/systemd-sysusers", "/bin/systemd-sysusers") {
		steps = append(steps, []string{"systemd-sysusers"})
	}
	if has("/usr/bin/journalctl", "/bin/journalctl") {
		steps = append(steps, []string{"journalctl", "--update-catalog"})
	}
	// Debian ships hwdb.bin in /usr; build one there only if it is missing.
	if has("/usr/bin/systemd-hwdb", "/bin/systemd-hwdb") && !has("/usr/lib/udev/hwdb.bin", "/lib/udev/hwdb.bin", "/etc/udev/hwdb.bin") {
		steps = append(steps, []string{"systemd-hwdb", "update", "--usr"})
	}
	for _, argv := range steps {
		if _, err := c.run(ctx, "settling first-boot work: "+argv[0], nil, argv...); err != nil {
			return err
		}
	}
	return nil
}

// needsUpdateStamps are the files systemd's ConditionNeedsUpdate compares
// with /usr.
var needsUpdateStamps = []string{"/etc/.updated", "/var/.updated"}

// writeUpdateStamps marks /etc and /var as up to date with /usr, as
// systemd-update-done.service does at the end of a boot that updated them.
// /usr's time is cut to whole seconds first, so the comparison holds
// whether or not the file system keeps nanoseconds.
func writeUpdateStamps(r root) error {
	usr := filepath.Join(r.dir, "usr")
	st, err := os.Stat(usr)
	if err != nil {
		return err
	}
	t := st.ModTime().Truncate(time.Second)
	if err := os.Chtimes(usr, t, t); err != nil {
		return err
	}
	content := fmt.Sprintf("# Written by kiln at bake time, as systemd-update-done.service would:\n"+
		"# /etc and /var are up to date with /usr as of this time (see\n"+
		"# man:systemd.unit(5), ConditionNeedsUpdate=).\nTIMESTAMP_NSEC=%d\n", t.UnixNano())
	for _, stamp := range needsUpdateStamps {
		if err := r.writeFile(stamp, []byte(content), 0o644, 0, 0); err != nil {
			return err
		}
		host, err := r.resolve(stamp)
		if err != nil {
			return err
		}
		if err := os.Chtimes(host, t, t); err != nil {
			return err
		}
	}
	return nil
}

// timestampPycs makes the tree's Python bytecode validate by the source's
// time and size, as a stock Debian system's does, instead of by a hash of
// the source. Python compiles checked-hash .pyc files whenever
// SOURCE_DATE_EPOCH is set, as it is while kiln builds bases; each import
// of one reads and hashes the whole source file — seconds of a small VM's
// first boot for cloud-init alone. The code in the file is the same in both
// forms (PEP 552): only the 16-byte header changes.
func timestampPycs(r root) error {
	return filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pyc") || filepath.Base(filepath.Dir(p)) != "__pycache__" {
			return err
		}
		// __pycache__/mod.cpython-313.pyc (or .opt-1.pyc) is mod.py's.
		mod, _, _ := strings.Cut(d.Name(), ".")
		src, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(p)), mod+".py"))
		if err != nil || !src.Mode().IsRegular() {
			return nil // no source beside it: nothing to validate against
		}
		return pycToTimestamp(p, src)
	})
}

// pycToTimestamp rewrites one .pyc's header: flags 0, then the source's
// mtime and size (each modulo 2^32, as Python compares them).
func pycToTimestamp(path string, src fs.FileInfo) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [16]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return nil // not a .pyc Python would load either
	}
	flags := binary.LittleEndian.Uint32(h[4:8])
	if h[2] != '\r' || h[3] != '\n' || flags&1 == 0 {
		return nil // not bytecode, or already timestamp-based
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(h[4:8], 0)
	binary.LittleEndian.PutUint32(h[8:12], uint32(src.ModTime().Unix()))
	binary.LittleEndian.PutUint32(h[12:16], uint32(src.Size()))
	if _, err := f.WriteAt(h[4:16], 4); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(path, st.ModTime(), st.ModTime())
}
