package iso

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/epoch"
)

func TestRoundTrip(t *testing.T) {
	var many []Entry
	for i := range MaxEntries {
		// 64-byte names that share a long prefix: worst case for 8.3 and
		// ISO identifier clashes, and 5 LFN entries each.
		name := fmt.Sprintf("%s-%02d", strings.Repeat("x", MaxNameLen-3), i)
		many = append(many, Entry{Name: name, Data: pattern(i*37, byte(i))})
	}
	cases := map[string][]Entry{
		"seed":        seedEntries(),
		"vendor-data": append(seedEntries(), Entry{Name: "vendor-data", Data: []byte("#cloud-config\n{}\n")}),
		"empty files": {{Name: "meta-data"}, {Name: "user-data", Data: []byte{}}, {Name: "z", Data: []byte("z")}},
		"only empty":  {{Name: "meta-data"}},
		"no entries":  nil,
		// Sizes straddling sector (2048) and cluster (512) boundaries.
		"multi-sector": {
			{Name: "a", Data: pattern(2047, 1)}, {Name: "b", Data: pattern(2048, 2)},
			{Name: "c", Data: pattern(2049, 3)}, {Name: "d", Data: pattern(100_000, 4)},
			{Name: "e", Data: pattern(511, 5)}, {Name: "f", Data: pattern(513, 6)},
		},
		"8.3 and odd names": {
			{Name: "README", Data: []byte("upper 8.3, no long name")},
			{Name: "A.TXT", Data: []byte("1")}, {Name: "a b c.tar.gz", Data: []byte("2")},
			{Name: ".hidden", Data: []byte("3")}, {Name: "x+y=z[1],(2)", Data: []byte("4")},
			{Name: "USER-D~1", Data: []byte("takes the short name user-data would get")},
			{Name: "user-data", Data: []byte("5")}, {Name: "user-data2", Data: []byte("6")},
			{Name: "~!#$%&'()-@^_`{}", Data: []byte("7")},
		},
		"64 long names": many,
	}
	for name, entries := range cases {
		for _, f := range formats {
			t.Run(name+"/"+f.String(), func(t *testing.T) {
				img := write(t, Options{Format: f, ModTime: testTime}, entries)
				label, got := read(t, img)
				if want := map[Format]string{ISO9660: "cidata", VFAT: "CIDATA"}[f]; label != want {
					t.Errorf("label %q, want %q", label, want)
				}
				if d := diffEntries(got, sortedEntries(entries)); d != "" {
					t.Error(d)
				}
			})
		}
	}
}

// TestJolietAndPrimaryTrees checks the two name trees Read does not use
// when Rock Ridge is present: Joliet must hold the exact names, and the
// primary tree unique, valid upper-case 8.3 identifiers.
func TestJolietAndPrimaryTrees(t *testing.T) {
	entries := append(seedEntries(),
		Entry{Name: "user-data2", Data: []byte("clashes with user-data as USER_DAT")},
		Entry{Name: "user_dat", Data: []byte("is USER_DAT too")},
		Entry{Name: "user_da1", Data: []byte("owns USER_DA1, so no tail may take it")},
		Entry{Name: "vendor-data", Data: []byte("v")})
	img := write(t, Options{ModTime: testTime}, entries)
	m := &image{r: bytes.NewReader(img), size: int64(len(img))}

	_, joliet, err := readISOTree(m, treeJoliet)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffEntries(sortedEntries(joliet), sortedEntries(entries)); d != "" {
		t.Errorf("Joliet tree: %s", d)
	}

	_, primary, err := readISOTree(m, treePrimary)
	if err != nil {
		t.Fatal(err)
	}
	// Clashing names all get tails, in name order, skipping USER_DA1.
	want := map[string]string{ // primary name -> content owner
		"META_DAT": "meta-data", "NETWORK_": "network-config", "USER_DA1": "user_da1",
		"USER_DA2": "user-data", "USER_DA3": "user-data2", "USER_DA4": "user_dat",
		"VENDOR_D": "vendor-data",
	}
	byName := map[string][]byte{}
	for _, e := range entries {
		byName[e.Name] = e.Data
	}
	if len(primary) != len(want) {
		t.Fatalf("primary names %q, want %d", names(primary), len(want))
	}
	for _, e := range primary {
		owner, ok := want[e.Name]
		if !ok {
			t.Errorf("unexpected primary name %q", e.Name)
			continue
		}
		if !bytes.Equal(e.Data, byName[owner]) {
			t.Errorf("primary %q does not hold %q's data", e.Name, owner)
		}
	}
}

func TestLabel(t *testing.T) {
	cases := []struct {
		f          Format
		label, out string
	}{
		{ISO9660, "", "cidata"},
		{VFAT, "", "CIDATA"},
		{ISO9660, "CIDATA", "CIDATA"},
		{ISO9660, "config-2.x_Y", "config-2.x_Y"},
		{ISO9660, strings.Repeat("L", 32), strings.Repeat("L", 32)},
		{VFAT, "cidata", "CIDATA"}, // FAT labels are upper case
		{VFAT, "KILN_SEED-1", "KILN_SEED-1"},
	}
	for _, c := range cases {
		img := write(t, Options{Format: c.f, Label: c.label, ModTime: testTime}, seedEntries())
		if got, _ := read(t, img); got != c.out {
			t.Errorf("%v label %q: read back %q, want %q", c.f, c.label, got, c.out)
		}
	}
}

func TestReproducible(t *testing.T) {
	reversed := seedEntries()
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	// Written again seconds later (past FAT's 2 s and ISO9660's 1 s
	// steps), the bytes must not change: no clock (go-diskfs's ISO9660
	// writer dates its volume descriptors with time.Now()). The quick
	// pass skips the wait.
	earlier := map[Format][]byte{}
	for _, f := range formats {
		earlier[f] = write(t, Options{Format: f, ModTime: testTime}, seedEntries())
	}
	if !testing.Short() {
		time.Sleep(2100 * time.Millisecond)
	}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			opts := Options{Format: f, ModTime: testTime}
			a := write(t, opts, seedEntries())
			if !bytes.Equal(a, earlier[f]) {
				t.Error("same input twice gave different bytes")
			}
			if b := write(t, opts, reversed); !bytes.Equal(a, b) {
				t.Error("input order changed the bytes")
			}
			// The same instant in another zone is the same ModTime.
			opts.ModTime = testTime.In(time.FixedZone("X", 5*3600))
			if b := write(t, opts, seedEntries()); !bytes.Equal(a, b) {
				t.Error("ModTime's zone changed the bytes")
			}
			opts.ModTime = testTime.Add(24 * time.Hour)
			if b := write(t, opts, seedEntries()); bytes.Equal(a, b) {
				t.Error("a different ModTime gave identical bytes")
			}
			changed := seedEntries()
			changed[0].Data = append([]byte(nil), changed[0].Data...)
			changed[0].Data[0] ^= 1
			opts.ModTime = testTime
			if b := write(t, opts, changed); bytes.Equal(a, b) {
				t.Error("different content gave identical bytes")
			}
		})
	}
}

// TestZeroModTime: a zero ModTime is the shared default epoch, whatever
// the environment says: the caller decides the build's time.
func TestZeroModTime(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(testTime.Unix()))
	for _, f := range formats {
		zero := write(t, Options{Format: f}, seedEntries())
		explicit := write(t, Options{Format: f, ModTime: epoch.Default}, seedEntries())
		if !bytes.Equal(zero, explicit) {
			t.Errorf("%v: zero ModTime differs from ModTime = epoch.Default", f)
		}
	}
}

func TestInvalidInput(t *testing.T) {
	tooMany := make([]Entry, MaxEntries+1)
	for i := range tooMany {
		tooMany[i].Name = fmt.Sprintf("f%d", i)
	}
	half := make([]byte, MaxTotalSize/2+1)
	cases := []struct {
		name    string
		opts    Options
		entries []Entry
		want    string // substring of the error
	}{
		{"empty name", Options{}, []Entry{{Name: ""}}, "iso: entry name is empty"},
		{"slash", Options{}, []Entry{{Name: "a/b"}}, `iso: entry "a/b": name contains '/'`},
		{"NUL", Options{}, []Entry{{Name: "a\x00b"}}, `iso: entry "a\x00b": name contains NUL`},
		{"newline", Options{}, []Entry{{Name: "a\nb"}}, `iso: entry "a\nb": name contains non-printable`},
		{"DEL", Options{}, []Entry{{Name: "a\x7f"}}, `name contains non-printable`},
		{"non-ASCII", Options{}, []Entry{{Name: "café"}}, `iso: entry "café": name contains non-printable or non-ASCII`},
		{"backslash", Options{}, []Entry{{Name: `a\b`}}, `which Joliet and VFAT cannot store`},
		{"colon", Options{}, []Entry{{Name: "a:b"}}, `iso: entry "a:b": name contains ":"`},
		{"semicolon", Options{}, []Entry{{Name: "a;1"}}, `name contains ";"`},
		{"dot", Options{}, []Entry{{Name: "."}}, `iso: entry ".": name ends with '.'`},
		{"dotdot", Options{}, []Entry{{Name: ".."}}, `iso: entry "..": name ends with '.'`},
		{"trailing dot", Options{}, []Entry{{Name: "user-data."}}, `name ends with '.'`},
		{"leading space", Options{}, []Entry{{Name: " a"}}, `iso: entry " a": name starts or ends with a space`},
		{"too long", Options{}, []Entry{{Name: strings.Repeat("n", MaxNameLen+1)}}, "name is 65 bytes, longer than 64"},
		{"duplicate", Options{}, []Entry{{Name: "user-data"}, {Name: "meta-data"}, {Name: "user-data"}}, `iso: duplicate entry name "user-data"`},
		{"case duplicate", Options{}, []Entry{{Name: "user-data"}, {Name: "USER-DATA"}}, `iso: entry names "user-data" and "USER-DATA" differ only in case`},
		{"too many", Options{}, tooMany, "iso: 65 entries, more than 64"},
		{"too big", Options{}, []Entry{{Name: "a", Data: half}, {Name: "b", Data: half}}, `iso: entry "b": total data exceeds 67108864 bytes`},
		{"ISO label too long", Options{Label: strings.Repeat("x", 33)}, nil, "is 33 bytes, longer than 32"},
		{"ISO label space", Options{Label: "ci data"}, nil, `iso: label "ci data": invalid character " "`},
		{"ISO label slash", Options{Label: "ci/data"}, nil, `invalid character "/"`},
		{"FAT label too long", Options{Format: VFAT, Label: "ABCDEFGHIJKL"}, nil, `iso: label "ABCDEFGHIJKL" is 12 bytes, longer than 11`},
		{"FAT label dot", Options{Format: VFAT, Label: "CI.DATA"}, nil, `invalid character "."`},
		{"unknown format", Options{Format: 7}, nil, "iso: unknown format 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := formats
			if c.opts.Format != ISO9660 || strings.Contains(c.name, "label") {
				fs = []Format{c.opts.Format}
			}
			for _, f := range fs {
				opts := c.opts
				opts.Format = f
				var buf bytes.Buffer
				err := Write(&buf, opts, c.entries)
				if err == nil {
					t.Fatalf("%v: Write succeeded, want error containing %q", f, c.want)
				}
				if !strings.HasPrefix(err.Error(), "iso: ") || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%v: error %q, want it to contain %q", f, err, c.want)
				}
				if buf.Len() != 0 {
					t.Errorf("%v: %d bytes written before the error", f, buf.Len())
				}
			}
		})
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	for _, f := range formats {
		for _, after := range []int{0, 40000, 50000} {
			err := Write(&failWriter{after: after}, Options{Format: f}, seedEntries())
			if err == nil || !strings.HasPrefix(err.Error(), "iso: write image: ") || !strings.Contains(err.Error(), "disk full") {
				t.Errorf("%v, failing after %d bytes: error %v, want iso: write image: ... disk full", f, after, err)
			}
		}
	}
}

func TestFormatString(t *testing.T) {
	for f, want := range map[Format]string{ISO9660: "iso9660", VFAT: "vfat", 9: "Format(9)"} {
		if got := f.String(); got != want {
			t.Errorf("Format(%d).String() = %q, want %q", int(f), got, want)
		}
	}
}
