package iso

// Integration tests: the images must satisfy the real tools cloud-init
// and administrators use. They need isoinfo, blkid, cloud-localds,
// xorriso, mtools, dosfstools and file; testutil skips them (or fails
// under CI=true) when a tool is missing.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// run executes a tool and returns its stdout; a non-zero exit fails the test.
func run(t *testing.T, dir string, tool string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testutil.NeedTool(t, tool), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", tool, args, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// integrationEntries adds an empty file and a multi-sector one to the
// seed, to exercise more than the happy path.
func integrationEntries() []Entry {
	return append(seedEntries(),
		Entry{Name: "vendor-data", Data: pattern(5000, 7)},
		Entry{Name: "empty-file"},
		Entry{Name: "README"})
}

func writeTemp(t *testing.T, opts Options, entries []Entry, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := WriteFile(path, 0o644, opts, entries); err != nil {
		t.Fatal(err)
	}
	return path
}

// blkidExport returns blkid's KEY=value pairs for a file, probing it
// directly (-p) rather than trusting the cache.
func blkidExport(t *testing.T, path string) map[string]string {
	t.Helper()
	out := run(t, "", "blkid", "-p", "-o", "export", path)
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// isoinfoListing parses `isoinfo -l` output into "mode size name" lines for
// the files (not "." and ".."), sorted by name.
var isoinfoLine = regexp.MustCompile(`^(\S{10})\s+\d+\s+\d+\s+\d+\s+(\d+) .*\]  (.*) $`)

func isoinfoListing(t *testing.T, path string, tree string) []string {
	t.Helper()
	out := run(t, "", "isoinfo", tree, "-l", "-i", path)
	var files []string
	for _, line := range strings.Split(string(out), "\n") {
		m := isoinfoLine.FindStringSubmatch(line)
		if m == nil || m[3] == "." || m[3] == ".." {
			continue
		}
		files = append(files, fmt.Sprintf("%s %s %s", m[1], m[2], m[3]))
	}
	slices.SortFunc(files, func(a, b string) int {
		return strings.Compare(strings.SplitN(a, " ", 3)[2], strings.SplitN(b, " ", 3)[2])
	})
	return files
}

func TestIntegrationISO(t *testing.T) {
	testutil.Integration(t)
	cases := map[string][]Entry{
		"seed": integrationEntries(),
		// The last file's data ends on a sector boundary: go-diskfs's
		// writer loses its Joliet directory then.
		"user-data 2048": seedWith(2048),
		"user-data 4096": seedWith(4096),
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) { checkISO(t, entries) })
	}
}

// checkISO has blkid, isoinfo and file check a seed ISO of the entries:
// label, Rock Ridge and Joliet trees, every file's bytes, dates.
func checkISO(t *testing.T, entries []Entry) {
	path := writeTemp(t, Options{ModTime: testTime}, entries, "seed.iso")
	st, _ := os.Stat(path)

	kv := blkidExport(t, path)
	if kv["LABEL"] != "cidata" || kv["TYPE"] != "iso9660" {
		t.Errorf("blkid: LABEL=%q TYPE=%q, want cidata iso9660 (%v)", kv["LABEL"], kv["TYPE"], kv)
	}

	info := string(run(t, "", "isoinfo", "-d", "-i", path))
	for _, want := range []string{
		"Volume id: cidata\n",
		"Logical block size is: 2048\n",
		fmt.Sprintf("Volume size is: %d\n", st.Size()/2048),
		"Joliet with UCS level 3 found",
		"Rock Ridge signatures version 1 found",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("isoinfo -d lacks %q:\n%s", want, info)
		}
	}

	var wantRR, wantJ []string
	for _, e := range sortedEntries(entries) {
		wantRR = append(wantRR, fmt.Sprintf("-rw-r--r-- %d %s", len(e.Data), e.Name))
		wantJ = append(wantJ, fmt.Sprintf("---------- %d %s", len(e.Data), e.Name))
	}
	if got := isoinfoListing(t, path, "-R"); !slices.Equal(got, wantRR) {
		t.Errorf("isoinfo -R -l:\n got %q\nwant %q", got, wantRR)
	}
	if got := isoinfoListing(t, path, "-J"); !slices.Equal(got, wantJ) {
		t.Errorf("isoinfo -J -l:\n got %q\nwant %q", got, wantJ)
	}
	for _, e := range entries {
		for _, tree := range []string{"-R", "-J"} {
			if got := run(t, "", "isoinfo", tree, "-x", "/"+e.Name, "-i", path); !bytes.Equal(got, e.Data) {
				t.Errorf("isoinfo %s -x /%s: %d bytes differ from the %d written", tree, e.Name, len(got), len(e.Data))
			}
		}
	}
	// The 7-byte directory dates must carry ModTime (2024-05-06).
	if l := run(t, "", "isoinfo", "-R", "-l", "-i", path); !bytes.Contains(l, []byte("May  6 2024")) {
		t.Errorf("isoinfo -l does not show ModTime:\n%s", l)
	}

	if got := string(run(t, "", "file", "-b", path)); !strings.Contains(got, "ISO 9660 CD-ROM filesystem data 'cidata'") {
		t.Errorf("file: %q", got)
	}
}

// TestIntegrationXorriso: libisofs is a strict reader; it must load the
// image without a single warning and offer both Rock Ridge and Joliet.
func TestIntegrationXorriso(t *testing.T) {
	testutil.Integration(t)
	path := writeTemp(t, Options{ModTime: testTime}, integrationEntries(), "seed.iso")
	out := string(run(t, "", "xorriso", "-abort_on", "NEVER", "-return_with", "WARNING", "32",
		"-indev", path, "-toc", "-find", "/", "-exec", "lsdl"))
	if !strings.Contains(out, "ISO offers   : Rock_Ridge Joliet") {
		t.Errorf("xorriso does not see Rock Ridge and Joliet:\n%s", out)
	}
	for _, e := range integrationEntries() {
		if !strings.Contains(out, fmt.Sprintf("-rw-r--r--    1 0        0 %15d May  6  2024 '/%s'", len(e.Data), e.Name)) {
			t.Errorf("xorriso listing lacks %q (%d bytes):\n%s", e.Name, len(e.Data), out)
		}
	}
}

// TestIntegrationCloudLocalds builds the same seed with cloud-localds
// (genisoimage underneath) and with Write: the file listings and labels
// must match, and Read must understand cloud-localds's images.
func TestIntegrationCloudLocalds(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	entries := seedEntries()
	for _, e := range entries {
		p := filepath.Join(dir, e.Name)
		if err := os.WriteFile(p, e.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o644) // whatever the umask: our files are 0644 too
	}
	run(t, dir, "cloud-localds", "-N", "network-config", "theirs.iso", "user-data", "meta-data")
	theirs := filepath.Join(dir, "theirs.iso")
	ours := writeTemp(t, Options{}, entries, "ours.iso")

	for _, tree := range []string{"-R", "-J"} {
		a, b := isoinfoListing(t, ours, tree), isoinfoListing(t, theirs, tree)
		if len(a) != len(entries) || !slices.Equal(a, b) {
			t.Errorf("isoinfo %s -l differs:\n ours   %q\n theirs %q", tree, a, b)
		}
	}
	for _, p := range []string{ours, theirs} {
		if kv := blkidExport(t, p); kv["LABEL"] != "cidata" || kv["TYPE"] != "iso9660" {
			t.Errorf("%s: blkid LABEL=%q TYPE=%q", filepath.Base(p), kv["LABEL"], kv["TYPE"])
		}
	}
	img, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	label, got := read(t, img)
	if label != "cidata" {
		t.Errorf("Read(cloud-localds ISO) label %q", label)
	}
	if d := diffEntries(got, sortedEntries(entries)); d != "" {
		t.Errorf("Read(cloud-localds ISO): %s", d)
	}

	// And the VFAT flavour (mkfs.vfat + mcopy).
	testutil.NeedTool(t, "mkfs.vfat")
	testutil.NeedTool(t, "mcopy")
	run(t, dir, "cloud-localds", "--filesystem=vfat", "-N", "network-config", "theirs.img", "user-data", "meta-data")
	img, err = os.ReadFile(filepath.Join(dir, "theirs.img"))
	if err != nil {
		t.Fatal(err)
	}
	label, got = read(t, img)
	if !strings.EqualFold(label, "cidata") {
		t.Errorf("Read(cloud-localds VFAT) label %q", label)
	}
	if d := diffEntries(got, sortedEntries(entries)); d != "" {
		t.Errorf("Read(cloud-localds VFAT): %s", d)
	}
}

// largestFAT returns the largest size of user-data, beside a small
// meta-data, for which the planned VFAT image still satisfies ok.
func largestFAT(t *testing.T, ok func(*fatLayout) bool) int {
	t.Helper()
	fits := func(n int) bool {
		l, err := planFAT("CIDATA", testTime, []Entry{{Name: "meta-data", Data: []byte("x")}, {Name: "user-data", Data: make([]byte, n)}})
		if err != nil {
			t.Fatal(err)
		}
		return ok(l)
	}
	lo, hi := 0, 8<<20 // fits(lo), !fits(hi)
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// seedWith is a seed whose user-data has n bytes.
func seedWith(n int) []Entry {
	return []Entry{{Name: "meta-data", Data: []byte("x")}, {Name: "user-data", Data: pattern(n, 4)}}
}

func TestIntegrationVFAT(t *testing.T) {
	testutil.Integration(t)
	oneMiB := largestFAT(t, func(l *fatLayout) bool { return l.total == 2048 })
	fat12 := largestFAT(t, func(l *fatLayout) bool { return !l.fat16 })
	var whole []Entry // files of whole 512-byte clusters
	for i := range 8 {
		whole = append(whole, Entry{Name: fmt.Sprintf("part-%d", i), Data: pattern(512<<i, byte(i))})
	}
	cases := map[string][]Entry{
		"seed": integrationEntries(),
		// Clashing 8.3 names, 5-part long names and a FAT16 image.
		"clashes": {
			{Name: "user-data", Data: []byte("1")}, {Name: "user-data2", Data: []byte("2")},
			{Name: "USER-D~1", Data: []byte("3")}, {Name: "a b c.tar.gz", Data: []byte("4")},
			{Name: strings.Repeat("long-name-", 6) + "1234", Data: []byte("5")},
		},
		"fat16": {{Name: "big-file", Data: pattern(3<<20, 3)}, {Name: "meta-data", Data: []byte("x")}},
		// FAT12 at its limits, where a FAT sized a few entries short or a
		// cluster too many marked used (go-diskfs's FAT12 leaks one) shows:
		// fsck.fat -n fails on either.
		"fullest 1 MiB":       seedWith(oneMiB),
		"one more byte":       seedWith(oneMiB + 1),
		"fullest FAT12":       seedWith(fat12),
		"first FAT16":         seedWith(fat12 + 1),
		"whole clusters":      whole,
		"user-data 2 KiB":     seedWith(2048),
		"user-data 1 cluster": seedWith(512),
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, Options{Format: VFAT, ModTime: testTime}, entries, "seed.img")

			if kv := blkidExport(t, path); kv["LABEL"] != "CIDATA" || kv["TYPE"] != "vfat" {
				t.Errorf("blkid: LABEL=%q TYPE=%q, want CIDATA vfat (%v)", kv["LABEL"], kv["TYPE"], kv)
			}
			// fsck.fat -n exits non-zero if it finds anything to fix.
			run(t, "", "fsck.fat", "-n", path)

			var want []string
			for _, e := range sortedEntries(entries) {
				want = append(want, "::/"+e.Name)
			}
			got := strings.Split(strings.TrimSuffix(string(run(t, "", "mdir", "-b", "-i", path, "::")), "\n"), "\n")
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("mdir -b:\n got %q\nwant %q", got, want)
			}
			if out := string(run(t, "", "mdir", "-i", path, "::")); !strings.Contains(out, "Volume in drive : is CIDATA") {
				t.Errorf("mdir does not show the label:\n%s", out)
			}
			for _, e := range entries {
				if got := run(t, "", "mtype", "-i", path, "::/"+e.Name); !bytes.Equal(got, e.Data) {
					t.Errorf("mtype ::/%s: %d bytes differ from the %d written", e.Name, len(got), len(e.Data))
				}
			}
		})
	}
	path := writeTemp(t, Options{Format: VFAT, ModTime: testTime}, seedEntries(), "seed.img")
	if got := string(run(t, "", "file", "-b", path)); !strings.Contains(got, `label: "CIDATA     "`) || !strings.Contains(got, "FAT (12 bit)") {
		t.Errorf("file: %q", got)
	}
	if out := string(run(t, "", "mdir", "-i", path, "::")); !strings.Contains(out, "2024-05-06   7:08  user-data") {
		t.Errorf("mdir does not show ModTime and the long name:\n%s", out)
	}
}
