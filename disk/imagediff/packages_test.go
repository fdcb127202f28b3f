package imagediff

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestPackages(t *testing.T) {
	fsys := fstest.MapFS{StatusFile: {Data: []byte(statusA + "\nPackage: half\nStatus: install ok half-installed\nVersion: 2\n\n\n")}}
	got, err := Packages(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"base-files", "amd64", "13.8"}, {"curl", "amd64", "8.14.1-2"}, {"wget", "amd64", "1.25.0-2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// A tree without dpkg: no packages, no error.
	if got, err := Packages(fstest.MapFS{}); err != nil || len(got) != 0 {
		t.Errorf("no status file: %v %v", got, err)
	}
}

// FuzzParseStatus: any bytes (an image's status file is hostile) give
// packages or an error, never a panic, and every package has a name.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(statusA))
	f.Add([]byte("Package: x\nStatus: install ok installed\n \n\tcont\n"))
	f.Add([]byte(strings.Repeat("Package:", 1000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parseStatus(data)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" {
				t.Fatalf("a package without a name: %+v", p)
			}
		}
	})
}
