package main

import (
	"bytes"
	"testing"

	"github.com/kiln-project/kiln/manifest"
)

// TestLockChanges: kiln lock update reports added, removed and moved
// packages as kiln diff reports packages.
func TestLockChanges(t *testing.T) {
	old := &manifest.Lock{Packages: []manifest.Package{
		{Name: "less", Version: "600-1", Arch: "amd64"},
		{Name: "gone", Version: "1", Arch: "all"},
		{Name: "same", Version: "2", Arch: "all"},
	}}
	new := &manifest.Lock{Packages: []manifest.Package{
		{Name: "less", Version: "668-1", Arch: "amd64"},
		{Name: "same", Version: "2", Arch: "all"},
		{Name: "added", Version: "3", Arch: "amd64"},
	}}
	var b bytes.Buffer
	printPackageChanges(&b, lockChanges(old, new))
	want := "~ package less 600-1 -> 668-1 (amd64)\n+ package added 3 (amd64)\n- package gone 1 (all)\n"
	if b.String() != want {
		t.Errorf("got\n%swant\n%s", b.String(), want)
	}
	if c := lockChanges(new, new); len(c) != 0 {
		t.Errorf("a lock differs from itself: %+v", c)
	}
}
