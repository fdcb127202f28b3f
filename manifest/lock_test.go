package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testLock() *Lock {
	return NewLock(&Manifest{
		Recipe: Recipe{Name: "web"},
		Base:   Base{Ref: "debian:stable", Suite: "trixie", Releases: []Release{{Suite: "trixie", Date: "Sat, 08 Nov 2025 10:00:00 UTC", SHA256: "sha256:" + strings.Repeat("ab", 32)}}},
		Packages: []Package{
			{Name: "openssh-server", Version: "1:10.0p1-7+deb13u4", Arch: "amd64"},
			{Name: "adduser", Version: "3.152", Arch: "all"},
		},
	})
}

func TestLockRoundTrip(t *testing.T) {
	l := testLock()
	if l.Packages[0].Name != "adduser" {
		t.Errorf("packages not sorted: %+v", l.Packages)
	}
	if got := l.Pins(); !reflect.DeepEqual(got, []string{"adduser=3.152", "openssh-server=1:10.0p1-7+deb13u4"}) {
		t.Errorf("Pins = %q", got)
	}
	path := filepath.Join(t.TempDir(), "web.lock")
	if err := WriteLock(path, l); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "\n    {\"name\":\"adduser\",\"version\":\"3.152\",\"arch\":\"all\"},\n") {
		t.Errorf("not one package a line:\n%s", b)
	}
	back, dig, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, l) || !strings.HasPrefix(dig, "sha256:") {
		t.Errorf("read back %+v (%s), wrote %+v", back, dig, l)
	}
	if LockPath("dir/web.yaml") != "dir/web.lock" || LockPath("web.yml") != "web.lock" || LockPath("recipe") != "recipe.lock" {
		t.Error("LockPath")
	}
}

func TestLockErrors(t *testing.T) {
	good, _ := MarshalLock(testLock())
	for name, tc := range map[string]struct{ in, want string }{
		"syntax":    {strings.Replace(string(good), `"recipe"`, `"recipe" "x"`, 1), "web.lock:3:"},
		"unknown":   {strings.Replace(string(good), `"recipe"`, `"recipes"`, 1), `unknown field "recipes"`},
		"type":      {strings.Replace(string(good), `"lockVersion": 1`, `"lockVersion": "1"`, 1), "web.lock:2:"},
		"newer":     {strings.Replace(string(good), `"lockVersion": 1`, `"lockVersion": 7`, 1), "newer than this kiln reads"},
		"missing":   {`{"packages": []}`, "lockVersion: missing"},
		"empty":     {`{"lockVersion": 1, "packages": []}`, "packages: empty"},
		"duplicate": {strings.Replace(strings.Replace(string(good), `"openssh-server"`, `"adduser"`, 1), `"amd64"`, `"all"`, 1), "listed twice"},
		"version":   {strings.Replace(string(good), `"3.152"`, `"3.152 evil"`, 1), "packages[0].version"},
		"name":      {strings.Replace(string(good), `"adduser"`, `"../x"`, 1), "packages[0].name"},
		"trailing":  {string(good) + "{}", "data after"},
	} {
		path := filepath.Join(t.TempDir(), "web.lock")
		os.WriteFile(path, []byte(tc.in), 0o644)
		_, _, err := ReadLock(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "web.lock") {
			t.Errorf("%s: error %v, want it to name the file and say %q", name, err, tc.want)
		}
	}
}

func TestLockDrift(t *testing.T) {
	l := testLock()
	if d := l.Drift(l.Packages); !d.Empty() {
		t.Errorf("the locked set drifts from itself: %+v", d)
	}
	installed := []Package{
		{Name: "adduser", Version: "3.153", Arch: "all"},
		{Name: "less", Version: "668-1", Arch: "amd64"},
	}
	d := l.Drift(installed)
	want := &LockDrift{
		Changed:  []PackageDrift{{Name: "adduser", Arch: "all", Want: "3.152", Got: "3.153"}},
		Unlocked: []Package{{Name: "less", Version: "668-1", Arch: "amd64"}},
		Missing:  []Package{{Name: "openssh-server", Version: "1:10.0p1-7+deb13u4", Arch: "amd64"}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Drift = %+v\nwant %+v", d, want)
	}
}

// FuzzParseLock: any bytes give a lock or an error, never a panic; what
// parses, marshals to bytes that parse to the same lock.
func FuzzParseLock(f *testing.F) {
	good, _ := MarshalLock(testLock())
	f.Add(good)
	f.Add([]byte(`{"lockVersion":1,"packages":[{"name":"a","version":"1","arch":"all"}]}`))
	f.Add([]byte(`{"lockVersion":1,"packages":[{"name":"a","version":"1","arch":"all"},{"name":"a","version":"1","arch":"all"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLock(b)
		if err != nil {
			return
		}
		out, err := MarshalLock(l)
		if err != nil {
			t.Fatalf("a parsed lock does not marshal: %v", err)
		}
		back, err := ParseLock(out)
		if err != nil {
			t.Fatalf("marshalled lock does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(back), normal(l)) {
			t.Fatalf("round trip changed the lock:\n%+v\n%+v", l, back)
		}
	})
}

// normal treats nil and empty lists alike.
func normal(l *Lock) *Lock {
	c := *l
	if c.Releases == nil {
		c.Releases = []Release{}
	}
	return &c
}
