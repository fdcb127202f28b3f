package lint

import (
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"
)

// The first-boot-work rule: what systemd, udev and the dynamic linker would
// rebuild at every clone's first boot, because the bake left it undone.

// needsUpdateUnits are systemd's units with ConditionNeedsUpdate=: they
// run at a boot that finds the stamp dir/.updated missing or older than
// /usr. systemd-update-done.service then writes both stamps.
var needsUpdateUnits = []struct{ unit, dir string }{
	{"ldconfig.service", "etc"},
	{"systemd-hwdb-update.service", "etc"},
	{"systemd-sysusers.service", "etc"},
	{"systemd-journal-catalog-update.service", "var"},
}

const updateDoneUnit = "systemd-update-done.service"

// unitDirs are where systemd finds system units in an image, in its order
// of precedence (the /run ones exist only at run time; lib/ is split-/usr).
var unitDirs = []string{"etc/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

// fixDoc is where the rule and its fixes are explained.
const fixDoc = "see first-boot-work in docs/baking.md"

func checkFirstBootWork(fsys FS) []Violation {
	var out []Violation
	out = append(out, checkUpdateStamps(fsys)...)
	out = append(out, checkLdCache(fsys)...)
	out = append(out, checkJournalCatalog(fsys)...)
	out = append(out, checkHwdb(fsys)...)
	return out
}

// checkUpdateStamps reports each stamp whose ConditionNeedsUpdate= holds,
// when systemd and its stamp writer are there, naming the units that would
// run.
func checkUpdateStamps(fsys FS) []Violation {
	if !exists(fsys, "usr/lib/systemd/systemd", "lib/systemd/systemd") || unitState(fsys, updateDoneUnit) != unitPresent {
		return nil
	}
	var out []Violation
	for _, dir := range []string{"etc", "var"} {
		var units []string
		for _, u := range needsUpdateUnits {
			if u.dir == dir && unitState(fsys, u.unit) == unitPresent {
				units = append(units, strings.TrimSuffix(u.unit, ".service"))
			}
		}
		if len(units) == 0 {
			continue
		}
		needs, why := needsUpdate(fsys, dir)
		if !needs {
			continue
		}
		out = append(out, Violation{Path: dir + "/.updated", Message: fmt.Sprintf(
			"%s: systemd would run %s at every first boot (ConditionNeedsUpdate=/%s); the bake should run them and write the stamp as systemd-update-done does (%s)",
			why, joinAnd(units), dir, fixDoc)})
	}
	return out
}

// needsUpdate is systemd's ConditionNeedsUpdate=/dir on the image
// (condition_test_needs_update in src/shared/condition.c): true when the
// stamp is missing or older than /usr, by seconds, then by nanoseconds of
// the mtimes, and — when /usr's mtime has nanoseconds and the stamp's has
// none, as on a filesystem that keeps none — by the TIMESTAMP_NSEC= the
// stamp holds. Whatever cannot be read counts as needing the update, as in
// systemd. why says what is wrong, for the message. (At run time systemd
// also answers false on a read-only filesystem and in the initrd.)
func needsUpdate(fsys FS, dir string) (needs bool, why string) {
	stamp := dir + "/.updated"
	st, err := fsys.Lstat(stamp)
	if err != nil {
		return true, "missing"
	}
	usr, err := fs.Stat(fsys, "usr")
	if err != nil {
		return true, "there is no /usr to compare it with"
	}
	u, s := usr.ModTime(), st.ModTime()
	if u.Unix() != s.Unix() {
		return u.Unix() > s.Unix(), fmt.Sprintf("older than /usr (%s < %s)", stampTime(s), stampTime(u))
	}
	if u.Nanosecond() == 0 || s.Nanosecond() > 0 {
		return u.Nanosecond() > s.Nanosecond(), fmt.Sprintf("older than /usr within the same second (%s < %s)", stampTime(s), stampTime(u))
	}
	b, err := fs.ReadFile(fsys, stamp)
	if err != nil {
		return true, "its mtime has no nanoseconds, /usr's has, and it cannot be read for TIMESTAMP_NSEC="
	}
	v := envValue(string(b), "TIMESTAMP_NSEC")
	if v == "" {
		return true, "its mtime has no nanoseconds, /usr's has, and it holds no TIMESTAMP_NSEC= to compare"
	}
	n, ok := parseSystemdUint(v)
	if !ok {
		return true, fmt.Sprintf("its TIMESTAMP_NSEC=%q is not a number", v)
	}
	usrNs := loadNsec(u)
	return usrNs > n, fmt.Sprintf("its TIMESTAMP_NSEC=%d is older than /usr's mtime (%d)", n, usrNs)
}

func stampTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// loadNsec is systemd's timespec_load_nsec: nanoseconds since the epoch,
// "infinity" for times before it or beyond 64 bits.
func loadNsec(t time.Time) uint64 {
	sec, nsec := t.Unix(), uint64(t.Nanosecond())
	if sec < 0 || uint64(sec) >= (math.MaxUint64-nsec)/1e9 {
		return math.MaxUint64
	}
	return uint64(sec)*1e9 + nsec
}

// envValue is the last value of key in an environment file as systemd's
// parse_env_file reads one: comment lines start with # or ;, space around
// the key and the value does not count, and quotes around the value are
// dropped.
func envValue(content, key string) string {
	var val string
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimLeft(line, " \t\r")
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		val = v
	}
	return val
}

// parseSystemdUint reads a number as systemd's safe_atou64 does: leading
// white space and a plus sign allowed, 0x hexadecimal, 0o and C's leading 0
// octal, 0b binary, nothing after the digits, no negative numbers but -0.
func parseSystemdUint(s string) (uint64, bool) {
	s = strings.TrimLeft(s, " \t\n\r")
	base := 0
	if len(s) >= 2 && s[0] == '0' {
		switch s[1] {
		case 'b', 'B':
			base, s = 2, s[2:]
		case 'o', 'O':
			base, s = 8, s[2:]
		}
	}
	s = strings.TrimLeft(s, " \t\n\r\f\v") // strtoull's own
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if base == 0 {
		switch {
		case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
			base, s = 16, s[2:]
		case len(s) > 1 && s[0] == '0':
			base = 8
		default:
			base = 10
		}
	}
	n, err := strconv.ParseUint(s, base, 64) // an explicit base takes no prefix, no underscores
	if err != nil || (neg && n != 0) {
		return 0, false
	}
	return n, true
}

func checkLdCache(fsys FS) []Violation {
	const p = "etc/ld.so.cache"
	if !exists(fsys, "usr/sbin/ldconfig", "sbin/ldconfig") || exists(fsys, p) {
		return nil
	}
	first := "nothing rebuilds it at boot (no ldconfig.service)"
	if unitState(fsys, "ldconfig.service") == unitPresent {
		first = "ldconfig.service would rebuild it at first boot when /etc/.updated is stale"
	}
	return []Violation{{Path: p, Message: fmt.Sprintf(
		"missing: %s, and until something does every program start searches the library directories; the bake should run ldconfig (%s)", first, fixDoc)}}
}

func checkJournalCatalog(fsys FS) []Violation {
	const p = "var/lib/systemd/catalog/database"
	if exists(fsys, p) || len(matches(fsys, []string{"usr/lib/systemd/catalog/*.catalog", "lib/systemd/catalog/*.catalog"})) == 0 {
		return nil
	}
	return []Violation{{Path: p, Message: fmt.Sprintf(
		"missing while message catalogs are installed: systemd-journal-catalog-update would build it at first boot when /var/.updated is stale, and journalctl explains no message until then; the bake should run journalctl --update-catalog (%s)", fixDoc)}}
}

func checkHwdb(fsys FS) []Violation {
	if exists(fsys, "etc/udev/hwdb.bin", "usr/lib/udev/hwdb.bin", "lib/udev/hwdb.bin") ||
		len(matches(fsys, []string{"usr/lib/udev/hwdb.d/*.hwdb", "lib/udev/hwdb.d/*.hwdb", "etc/udev/hwdb.d/*.hwdb"})) == 0 {
		return nil
	}
	return []Violation{{Path: "usr/lib/udev/hwdb.bin", Message: fmt.Sprintf(
		"missing (as is /etc/udev/hwdb.bin) while udev's hwdb.d sources are installed: systemd-hwdb-update would compile them at first boot when /etc/.updated is stale, and udev finds no hardware database entries until then; the bake should run systemd-hwdb --usr update (%s)", fixDoc)}}
}

// unitFile is what systemd would load for a unit.
type unitFile int

const (
	unitAbsent unitFile = iota
	unitMasked
	unitPresent
)

// unitState finds a system unit as systemd does: the first file of that
// name in unitDirs wins; a link to /dev/null or an empty file masks it.
func unitState(fsys FS, name string) unitFile {
	for _, dir := range unitDirs {
		p := dir + "/" + name
		st, err := fsys.Lstat(p)
		if err != nil {
			continue
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if t, err := fsys.ReadLink(p); err == nil && t == "/dev/null" {
				return unitMasked
			}
			if st, err = fs.Stat(fsys, p); err != nil {
				continue // dangling
			}
		}
		if st.Mode()&fs.ModeCharDevice != 0 || (st.Mode().IsRegular() && st.Size() == 0) {
			return unitMasked
		}
		return unitPresent
	}
	return unitAbsent
}

// exists reports whether any of paths exists, links followed.
func exists(fsys FS, paths ...string) bool {
	for _, p := range paths {
		if _, err := fs.Stat(fsys, p); err == nil {
			return true
		}
	}
	return false
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
