package lint

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// usrTime is /usr's mtime in the trees below: 2025-06-01 12:00:00.5 UTC.
var usrTime = time.Unix(1748779200, 500_000_000)

// stampFile is a stamp as systemd-update-done writes it: TIMESTAMP_NSEC=
// and the mtime both /usr's.
func stampFile(mtime time.Time, nsec string) *fstest.MapFile {
	return &fstest.MapFile{Mode: 0o644, ModTime: mtime, Data: []byte(
		"# This file was created by systemd-update-done. The timestamp below is the\n" +
			"# modification time of /usr/ for which the most recent updates of /etc/ have\n" +
			"# been applied. See man:systemd-update-done.service(8) for details.\n" +
			"TIMESTAMP_NSEC=" + nsec + "\n")}
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Mode: 0o644, Data: []byte(s)} }
func link(target string) *fstest.MapFile {
	return &fstest.MapFile{Mode: fs.ModeSymlink | 0o777, Data: []byte(target)}
}

// settledTree is a merged-/usr Debian 13 root whose bake settled what first
// boot would otherwise do (Debian builds systemd without ldconfig.service).
func settledTree() fstest.MapFS {
	unit := file("[Unit]\nDescription=x\n")
	nsec := fmt.Sprint(usrTime.UnixNano())
	return fstest.MapFS{
		"usr":                     {Mode: fs.ModeDir | 0o755, ModTime: usrTime},
		"lib":                     link("usr/lib"),
		"sbin":                    link("usr/sbin"),
		"usr/lib/systemd/systemd": {Mode: 0o755, Data: []byte("\x7fELF")},
		"usr/lib/systemd/system/systemd-update-done.service":            unit,
		"usr/lib/systemd/system/systemd-sysusers.service":               unit,
		"usr/lib/systemd/system/systemd-hwdb-update.service":            unit,
		"usr/lib/systemd/system/systemd-journal-catalog-update.service": unit,
		"usr/sbin/ldconfig":                            {Mode: 0o755, Data: []byte("\x7fELF")},
		"etc/ld.so.cache":                              file("glibc-ld.so.cache1.1"),
		"usr/lib/systemd/catalog/systemd.catalog":      file("-- f77379a8490b408bbe5f6940505a777b\nSubject: The journal has been started\n"),
		"var/lib/systemd/catalog/database":             file("RHHHKSLP"),
		"usr/lib/udev/hwdb.d/20-pci-vendor-model.hwdb": file("pci:v00001AF4*\n ID_VENDOR_FROM_DATABASE=Red Hat, Inc.\n"),
		"usr/lib/udev/hwdb.bin":                        file("KSLPHHRH"),
		"etc/.updated":                                 stampFile(usrTime, nsec),
		"var/.updated":                                 stampFile(usrTime, nsec),
	}
}

func TestFirstBootWork(t *testing.T) {
	sec := time.Unix(usrTime.Unix(), 0) // /usr's second, no nanoseconds
	usrNs := fmt.Sprint(usrTime.UnixNano())
	for _, tc := range []struct {
		name   string
		change func(m fstest.MapFS)
		want   []string // "path: message part", in report order
	}{
		{name: "settled", change: func(fstest.MapFS) {}},
		{name: "missing stamps", change: func(m fstest.MapFS) { delete(m, "etc/.updated"); delete(m, "var/.updated") },
			want: []string{
				"etc/.updated: missing: systemd would run systemd-hwdb-update and systemd-sysusers at every first boot (ConditionNeedsUpdate=/etc)",
				"var/.updated: missing: systemd would run systemd-journal-catalog-update at every first boot (ConditionNeedsUpdate=/var)",
			}},
		{name: "stale by seconds", change: func(m fstest.MapFS) { m["etc/.updated"] = stampFile(usrTime.Add(-time.Hour), usrNs) },
			want: []string{"etc/.updated: older than /usr (2025-06-01T11:00:00.5Z < 2025-06-01T12:00:00.5Z)"}},
		{name: "newer than /usr", change: func(m fstest.MapFS) { m["etc/.updated"] = stampFile(usrTime.Add(time.Hour), "") }},
		{name: "same second, fewer nanoseconds", change: func(m fstest.MapFS) { m["var/.updated"] = stampFile(usrTime.Add(-time.Nanosecond), usrNs) },
			want: []string{"var/.updated: older than /usr within the same second (2025-06-01T12:00:00.499999999Z < 2025-06-01T12:00:00.5Z)"}},
		{name: "same second, neither has nanoseconds", change: func(m fstest.MapFS) {
			m["usr"].ModTime = sec
			m["etc/.updated"] = stampFile(sec, "")
		}},
		{name: "same second, only the stamp has nanoseconds", change: func(m fstest.MapFS) {
			m["usr"].ModTime = sec
			m["etc/.updated"] = stampFile(usrTime, "")
		}},
		// /usr has nanoseconds and the stamp none (a filesystem that keeps
		// none): systemd reads TIMESTAMP_NSEC=.
		{name: "TIMESTAMP_NSEC equal", change: func(m fstest.MapFS) { m["etc/.updated"] = stampFile(sec, usrNs) }},
		{name: "TIMESTAMP_NSEC newer, in hex and quoted", change: func(m fstest.MapFS) {
			m["etc/.updated"] = stampFile(sec, fmt.Sprintf(`"0x%x"`, usrTime.UnixNano()+1))
		}},
		{name: "TIMESTAMP_NSEC older", change: func(m fstest.MapFS) { m["etc/.updated"] = stampFile(sec, fmt.Sprint(sec.UnixNano())) },
			want: []string{"etc/.updated: its TIMESTAMP_NSEC=1748779200000000000 is older than /usr's mtime (1748779200500000000)"}},
		{name: "TIMESTAMP_NSEC missing", change: func(m fstest.MapFS) { m["etc/.updated"] = &fstest.MapFile{ModTime: sec} },
			want: []string{"etc/.updated: its mtime has no nanoseconds, /usr's has, and it holds no TIMESTAMP_NSEC= to compare"}},
		{name: "TIMESTAMP_NSEC not a number", change: func(m fstest.MapFS) { m["etc/.updated"] = stampFile(sec, "soon") },
			want: []string{`etc/.updated: its TIMESTAMP_NSEC="soon" is not a number`}},
		{name: "TIMESTAMP_NSEC negative", change: func(m fstest.MapFS) { m["etc/.updated"] = stampFile(sec, "-1") },
			want: []string{`etc/.updated: its TIMESTAMP_NSEC="-1" is not a number`}},
		{name: "stamp writer masked", change: func(m fstest.MapFS) {
			m["etc/systemd/system/systemd-update-done.service"] = link("/dev/null")
			delete(m, "etc/.updated")
			delete(m, "var/.updated")
		}},
		{name: "stamp writer masked by an empty file", change: func(m fstest.MapFS) {
			m["etc/systemd/system/systemd-update-done.service"] = file("")
			delete(m, "etc/.updated")
		}},
		{name: "units of /etc masked", change: func(m fstest.MapFS) {
			m["etc/systemd/system/systemd-sysusers.service"] = link("/dev/null")
			m["etc/systemd/system/systemd-hwdb-update.service"] = link("/dev/null")
			delete(m, "etc/.updated")
			delete(m, "var/.updated")
		}, want: []string{"var/.updated: missing: systemd would run systemd-journal-catalog-update"}},
		{name: "an overriding unit in /etc", change: func(m fstest.MapFS) {
			m["etc/systemd/system/systemd-update-done.service"] = file("[Unit]\nDescription=local\n")
			delete(m, "etc/.updated")
		}, want: []string{"etc/.updated: missing"}},
		{name: "no systemd", change: func(m fstest.MapFS) {
			for p := range m {
				if strings.HasPrefix(p, "usr/lib/systemd/") && !strings.HasPrefix(p, "usr/lib/systemd/catalog") {
					delete(m, p)
				}
			}
			delete(m, "etc/.updated")
			delete(m, "var/.updated")
		}},
		{name: "split /usr", change: func(m fstest.MapFS) {
			delete(m, "lib")
			for p, f := range m {
				if rest, ok := strings.CutPrefix(p, "usr/lib/systemd/"); ok {
					m["lib/systemd/"+rest] = f
					delete(m, p)
				}
			}
			delete(m, "var/.updated")
		}, want: []string{"var/.updated: missing: systemd would run systemd-journal-catalog-update"}},
		{name: "ldconfig.service, all three units of /etc", change: func(m fstest.MapFS) {
			m["usr/lib/systemd/system/ldconfig.service"] = file("[Unit]\n")
			delete(m, "etc/.updated")
		}, want: []string{"etc/.updated: missing: systemd would run ldconfig, systemd-hwdb-update and systemd-sysusers"}},
		{name: "missing ld.so.cache", change: func(m fstest.MapFS) { delete(m, "etc/ld.so.cache") },
			want: []string{"etc/ld.so.cache: missing: nothing rebuilds it at boot (no ldconfig.service)"}},
		{name: "missing ld.so.cache, ldconfig.service", change: func(m fstest.MapFS) {
			delete(m, "etc/ld.so.cache")
			m["usr/lib/systemd/system/ldconfig.service"] = file("[Unit]\n")
		}, want: []string{"etc/ld.so.cache: missing: ldconfig.service would rebuild it at first boot"}},
		{name: "no ldconfig", change: func(m fstest.MapFS) { delete(m, "etc/ld.so.cache"); delete(m, "usr/sbin/ldconfig") }},
		{name: "missing journal catalog", change: func(m fstest.MapFS) { delete(m, "var/lib/systemd/catalog/database") },
			want: []string{"var/lib/systemd/catalog/database: missing while message catalogs are installed: systemd-journal-catalog-update would build it"}},
		{name: "no catalogs", change: func(m fstest.MapFS) {
			delete(m, "var/lib/systemd/catalog/database")
			delete(m, "usr/lib/systemd/catalog/systemd.catalog")
		}},
		{name: "missing hwdb.bin", change: func(m fstest.MapFS) { delete(m, "usr/lib/udev/hwdb.bin") },
			want: []string{"usr/lib/udev/hwdb.bin: missing (as is /etc/udev/hwdb.bin) while udev's hwdb.d sources are installed: systemd-hwdb-update would compile them"}},
		{name: "hwdb.bin in /etc", change: func(m fstest.MapFS) {
			m["etc/udev/hwdb.bin"] = m["usr/lib/udev/hwdb.bin"]
			delete(m, "usr/lib/udev/hwdb.bin")
		}},
		{name: "no hwdb sources", change: func(m fstest.MapFS) {
			delete(m, "usr/lib/udev/hwdb.bin")
			delete(m, "usr/lib/udev/hwdb.d/20-pci-vendor-model.hwdb")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := settledTree()
			tc.change(m)
			got := checkFirstBootWork(m)
			if len(got) != len(tc.want) {
				t.Fatalf("violations:\n%s\nwant %d:\n%s", joinViolations(got), len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i, v := range got {
				if s := v.Path + ": " + v.Message; !strings.HasPrefix(s, tc.want[i]) {
					t.Errorf("violation %d:\n%s\nwant it to start\n%s", i, s, tc.want[i])
				}
				if !strings.Contains(v.Message, "docs/baking.md") {
					t.Errorf("%s: the message does not say where the fix is explained", v.Path)
				}
			}
		})
	}
}

func joinViolations(vs []Violation) string {
	var s []string
	for _, v := range vs {
		s = append(s, "  "+v.Path+": "+v.Message)
	}
	return strings.Join(s, "\n")
}

// On a real filesystem (os.DirFS, as kiln lint reads a directory tree) the
// mtimes carry their nanoseconds to the comparison.
func TestFirstBootWorkNanoseconds(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "usr/lib/systemd/systemd", "")
	write(t, dir, "usr/lib/systemd/system/systemd-update-done.service", "[Unit]\n")
	write(t, dir, "usr/lib/systemd/system/systemd-sysusers.service", "[Unit]\n")
	write(t, dir, "etc/.updated", "TIMESTAMP_NSEC=0\n")
	stamp, usr := filepath.Join(dir, "etc/.updated"), filepath.Join(dir, "usr")
	for _, tc := range []struct {
		stamp time.Time
		stale bool
	}{
		{usrTime, false},
		{usrTime.Add(-time.Nanosecond), true},
		{usrTime.Add(time.Nanosecond), false},
	} {
		if err := os.Chtimes(usr, usrTime, usrTime); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(stamp, tc.stamp, tc.stamp); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(stamp); !st.ModTime().Equal(tc.stamp) {
			t.Skipf("this filesystem does not keep nanoseconds (%v)", st.ModTime())
		}
		vs := checkFirstBootWork(os.DirFS(dir).(FS))
		if stale := len(vs) > 0; stale != tc.stale {
			t.Errorf("stamp %s, /usr %s: violations %v", stampTime(tc.stamp), stampTime(usrTime), vs)
		}
	}
}

func TestParseSystemdUint(t *testing.T) {
	for in, want := range map[string]int64{
		"1748779200500000000": 1748779200500000000, " 42": 42, "+42": 42, "0x2a": 42, "0X2A": 42,
		"052": 42, "0o52": 42, "0b101010": 42, "0": 0, "-0": 0, "18446744073709551615": -1,
		"": -2, "-1": -2, "42 ": -2, "4_2": -2, "0x": -2, "08": -2, "18446744073709551616": -2, "soon": -2,
	} {
		n, ok := parseSystemdUint(in)
		switch {
		case want == -2 && ok:
			t.Errorf("%q: %d, want an error", in, n)
		case want == -1 && (!ok || n != 1<<64-1):
			t.Errorf("%q: %d %v, want the largest uint64", in, n, ok)
		case want >= 0 && (!ok || n != uint64(want)):
			t.Errorf("%q: %d %v, want %d", in, n, ok, want)
		}
	}
}
