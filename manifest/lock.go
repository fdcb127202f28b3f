package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/internal/digest"
)

// LockVersion is the layout WriteLock produces.
const LockVersion = 1

// maxLockSize bounds a lock file: a base with every Debian package (about
// 65,000) would take some 5 MB.
const maxLockSize = 16 << 20

// Lock pins the package set of a recipe's image (kiln bake --lock): a bake
// with it installs exactly these versions or fails naming those the mirror
// no longer has. Releases say which state of the archive it was taken
// from, so a snapshot mirror of that date can serve it again.
type Lock struct {
	LockVersion int       `json:"lockVersion"`
	Recipe      string    `json:"recipe"` // the recipe's name
	Base        string    `json:"base"`   // the recipe's base, as written
	Suite       string    `json:"suite"`  // the Debian release it resolved to
	Releases    []Release `json:"releases"`
	Packages    []Package `json:"packages"` // sorted by name, then arch
}

// Release identifies the state of one apt source when an image was baked:
// the Release file apt read (mirrors of one archive serve the same one).
type Release struct {
	Suite  string `json:"suite"`
	Date   string `json:"date"`   // its Date field
	SHA256 string `json:"sha256"` // of the whole file, "sha256:<hex>"
}

// LockPath is where the lock of the recipe at path lives: beside it, the
// recipe's file name with .lock for .yaml (web.yaml -> web.lock).
func LockPath(recipe string) string {
	ext := filepath.Ext(recipe)
	if ext == ".yaml" || ext == ".yml" {
		recipe = strings.TrimSuffix(recipe, ext)
	}
	return recipe + ".lock"
}

// NewLock is the lock of a baked image, from its manifest.
func NewLock(m *Manifest) *Lock {
	l := &Lock{LockVersion: LockVersion, Recipe: m.Recipe.Name, Base: m.Base.Ref, Suite: m.Base.Suite,
		Releases: append([]Release{}, m.Base.Releases...), Packages: append([]Package{}, m.Packages...)}
	sort.Slice(l.Packages, func(i, j int) bool {
		a, b := l.Packages[i], l.Packages[j]
		return a.Name < b.Name || a.Name == b.Name && a.Arch < b.Arch
	})
	return l
}

// Pins are the lock's packages as name=version, sorted.
func (l *Lock) Pins() []string {
	pins := make([]string, 0, len(l.Packages))
	for _, p := range l.Packages {
		pins = append(pins, p.Name+"="+p.Version)
	}
	sort.Strings(pins)
	return pins
}

// MarshalLock is the bytes WriteLock writes: indented JSON, one package a
// line, so a lock's history reads well in a diff.
func MarshalLock(l *Lock) ([]byte, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	head, err := json.Marshal(struct {
		LockVersion int       `json:"lockVersion"`
		Recipe      string    `json:"recipe"`
		Base        string    `json:"base"`
		Suite       string    `json:"suite"`
		Releases    []Release `json:"releases"`
	}{LockVersion, l.Recipe, l.Base, l.Suite, orEmpty(l.Releases)})
	if err != nil {
		return nil, err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, head, "", "  "); err != nil {
		return nil, err
	}
	b.Write(bytes.TrimSuffix(pretty.Bytes(), []byte("\n}")))
	b.WriteString(",\n  \"packages\": [")
	for i, p := range l.Packages {
		line, _ := json.Marshal(p)
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		b.Write(line)
	}
	if len(l.Packages) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("]\n}\n")
	return b.Bytes(), nil
}

// WriteLock writes l to path atomically.
func WriteLock(path string, l *Lock) error {
	b, err := MarshalLock(l)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	return atomicfile.Write(path, b, 0o644)
}

// ReadLock reads the lock at path and returns it with the digest of its
// bytes (what a manifest records). Errors name the file, and the line and
// column or the field at fault.
func ReadLock(path string) (*Lock, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxLockSize {
		return nil, "", fmt.Errorf("%s: larger than %d MiB: not a kiln lock", path, maxLockSize>>20)
	}
	l, err := ParseLock(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s%w", path, err)
	}
	return l, digest.Bytes(b).String(), nil
}

// ParseLock decodes a lock. Its errors start with ":line:col: " or ": " so
// that ReadLock can put the file name in front.
func ParseLock(b []byte) (*Lock, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := lineCol(b, se.Offset-1) // Offset counts the bad byte

			return nil, fmt.Errorf(":%d:%d: %v: not a kiln lock (regenerate it with kiln lock update)", line, col, se)
		case errors.As(err, &te):
			line, col := lineCol(b, te.Offset)
			return nil, fmt.Errorf(":%d:%d: %s: want a JSON %s, got %s", line, col, te.Field, te.Type, te.Value)
		default:
			return nil, fmt.Errorf(": %v: not a kiln lock (regenerate it with kiln lock update)", err)
		}
	}
	if dec.More() {
		return nil, fmt.Errorf(": data after the lock's JSON object")
	}
	switch {
	case l.LockVersion == 0:
		return nil, fmt.Errorf(": lockVersion: missing: not a kiln lock")
	case l.LockVersion > LockVersion:
		return nil, fmt.Errorf(": lockVersion %d is newer than this kiln reads (%d): use a newer kiln", l.LockVersion, LockVersion)
	case l.LockVersion != LockVersion:
		return nil, fmt.Errorf(": lockVersion %d is not a layout kiln knows", l.LockVersion)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf(": %w", err)
	}
	return &l, nil
}

// validate checks what a bake relies on: every package named once, with a
// version apt can pin.
func (l *Lock) validate() error {
	if len(l.Packages) == 0 {
		return fmt.Errorf("packages: empty: a lock pins the whole package set (regenerate it with kiln lock update)")
	}
	seen := map[string]bool{}
	for i, p := range l.Packages {
		switch {
		case p.Name == "" || strings.ContainsAny(p.Name, " \t\n=:/"):
			return fmt.Errorf("packages[%d].name: %q is not a Debian package name", i, p.Name)
		case p.Version == "" || strings.ContainsAny(p.Version, " \t\n="):
			return fmt.Errorf("packages[%d].version: %q is not a Debian version (package %s)", i, p.Version, p.Name)
		case p.Arch == "" || strings.ContainsAny(p.Arch, " \t\n=:/"):
			return fmt.Errorf("packages[%d].arch: %q is not a Debian architecture (package %s)", i, p.Arch, p.Name)
		case seen[p.Name+":"+p.Arch]:
			return fmt.Errorf("packages[%d]: %s (%s) is listed twice", i, p.Name, p.Arch)
		}
		seen[p.Name+":"+p.Arch] = true
	}
	return nil
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// LockDrift is how an image's installed packages differ from its lock.
type LockDrift struct {
	// Changed: locked at Want, installed at Got (the mirror offers no
	// longer the locked version).
	Changed []PackageDrift
	// Unlocked: installed but not in the lock (the recipe asks for more
	// than when it was locked).
	Unlocked []Package
	// Missing: in the lock but not installed (the recipe asks for less).
	Missing []Package
}

// PackageDrift is one package installed at another version than locked.
type PackageDrift struct {
	Name, Arch, Want, Got string
}

// Empty reports whether the image holds exactly the locked packages.
func (d *LockDrift) Empty() bool {
	return len(d.Changed) == 0 && len(d.Unlocked) == 0 && len(d.Missing) == 0
}

// Drift compares installed packages to the lock.
func (l *Lock) Drift(installed []Package) *LockDrift {
	d := &LockDrift{}
	locked := map[string]Package{}
	for _, p := range l.Packages {
		locked[p.Name+":"+p.Arch] = p
	}
	for _, p := range installed {
		k := p.Name + ":" + p.Arch
		want, ok := locked[k]
		switch {
		case !ok:
			d.Unlocked = append(d.Unlocked, p)
		case want.Version != p.Version:
			d.Changed = append(d.Changed, PackageDrift{Name: p.Name, Arch: p.Arch, Want: want.Version, Got: p.Version})
		}
		delete(locked, k)
	}
	for _, p := range l.Packages {
		if _, ok := locked[p.Name+":"+p.Arch]; ok {
			d.Missing = append(d.Missing, p)
		}
	}
	return d
}
