package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Compile turns a validated recipe and its roles into a Plan. It reads the
// files the recipe references with source:, and nothing else.
func Compile(r *Recipe) (*Plan, error) {
	p := &Plan{Recipe: r}
	errs := &ErrorList{}
	fail := func(path, format string, args ...any) {
		*errs = append(*errs, &Error{Pos: r.pos(path), Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for _, role := range r.Roles {
		c := &contribution{plan: p, origin: role.path, recipe: r}
		if err := role.Params.contribute(c); err != nil {
			fail(role.path, "%v", err)
		}
	}
	for _, role := range r.Roles {
		if g, ok := role.Params.(*Gateway); ok {
			for i := range p.Checks { // the roles' checks, before the recipe's own
				p.Checks[i] = g.probeFrom(p.Checks[i])
			}
		}
	}
	b := &r.Bake
	for i, pkg := range b.Packages {
		p.addOrigin(pkg, fmt.Sprintf("bake.packages[%d]", i))
	}
	p.Packages = uniqueSorted(append(p.Packages, b.Packages...))
	p.Users = append(p.Users, b.Users...)
	for i, f := range b.Files {
		path := fmt.Sprintf("bake.files[%d]", i)
		content, err := r.fileContent(f)
		if err != nil {
			fail(path+".source", "%v", err)
			continue
		}
		pf := PlanFile{Path: f.Path, Content: content, Mode: modeOr(f.Mode, 0o644), Owner: ownerOr(f.Owner), Origin: path}
		if pf.Owner == "root:root" {
			p.Files = append(p.Files, pf)
		} else {
			p.Deferred = append(p.Deferred, pf)
		}
	}
	p.Units = append(p.Units, b.Units...)
	for i, c := range b.Commands {
		p.Commands = append(p.Commands, PlanCommand{Command: c, Origin: fmt.Sprintf("bake.commands[%d]", i)})
	}
	if err := checkFileConflicts(p); err != nil {
		fail(err.path, "%s", err.msg)
	}
	p.Files, p.Deferred = lastByPath(p.Files), lastByPath(p.Deferred)

	bt := &r.Boot
	p.Boot.Hostname = bt.Hostname
	p.Boot.Timezone = bt.Timezone
	p.Boot.Users = append(p.Boot.Users, bt.Users...)
	p.Boot.Network = mergeNetwork(p.Boot.Network, bt.Network)
	for i, f := range bt.Files {
		path := fmt.Sprintf("boot.files[%d]", i)
		bf := BootFile{Path: f.Path, Mode: modeOr(f.Mode, 0o644), Owner: ownerOr(f.Owner), Origin: path, Secret: f.Secret}
		if f.Secret != "" {
			bf.Mode = modeOr(f.Mode, 0o600)
		} else {
			content, err := r.fileContent(f)
			if err != nil {
				fail(path+".source", "%v", err)
				continue
			}
			bf.Content = content
		}
		p.Boot.Files = append(p.Boot.Files, bf)
	}
	for i, c := range bt.Commands {
		p.Boot.Commands = append(p.Boot.Commands, PlanCommand{Command: c, Origin: fmt.Sprintf("boot.commands[%d]", i)})
	}
	for i, c := range r.Checks {
		c.Origin = fmt.Sprintf("checks[%d]", i)
		p.Checks = append(p.Checks, c)
	}
	for i := range p.Checks {
		defaultCheck(&p.Checks[i])
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	var err error
	if p.ImageKey, err = digest(imageInputs(p)); err != nil {
		return nil, err
	}
	if p.Digest, err = digest(struct {
		Image string
		Boot  any
		Files []string
	}{p.ImageKey, bootInputs(p), nil}); err != nil {
		return nil, err
	}
	return p, nil
}

// LoadPlan loads, defaults, validates and compiles a recipe file.
func LoadPlan(path string) (*Plan, error) {
	r, err := LoadAndCheck(path)
	if err != nil {
		return nil, err
	}
	return Compile(r)
}

// fileContent returns the bytes of a literal or source: file.
func (r *Recipe) fileContent(f File) ([]byte, error) {
	if f.Content != nil {
		return []byte(*f.Content), nil
	}
	return r.ReadLocal(f.Source)
}

// ReadLocal reads a file referenced by the recipe, refusing paths (or
// symlinks) that lead out of the recipe's directory.
func (r *Recipe) ReadLocal(ref string) ([]byte, error) {
	p, err := r.localPath(ref)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %v", ref, unwrapPathError(err))
	}
	return b, nil
}

func (r *Recipe) localPath(ref string) (string, error) {
	if filepath.IsAbs(ref) {
		return ref, nil
	}
	if c := filepath.Clean(ref); c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q leads out of the recipe's directory; keep referenced files beside the recipe", ref)
	}
	dir := r.Dir()
	p := filepath.Join(dir, ref)
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("cannot read %q: %v", ref, unwrapPathError(err))
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%q leads out of the recipe's directory (to %s); keep referenced files beside the recipe", ref, real)
	}
	return p, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

type conflict struct{ path, msg string }

// checkFileConflicts refuses two roles writing different bytes to the same
// file; the recipe's own bake.files may replace a role's file on purpose.
func checkFileConflicts(p *Plan) *conflict {
	seen := map[string]PlanFile{}
	for _, f := range append(append([]PlanFile{}, p.Files...), p.Deferred...) {
		prev, dup := seen[f.Path]
		if dup && strings.HasPrefix(prev.Origin, "roles[") && strings.HasPrefix(f.Origin, "roles[") && string(prev.Content) != string(f.Content) {
			return &conflict{f.Origin, fmt.Sprintf("%s is also written by %s; these roles cannot share a VM", f.Path, prev.Origin)}
		}
		seen[f.Path] = f
	}
	return nil
}

// lastByPath keeps one file per path, the last one written, in order.
func lastByPath(files []PlanFile) []PlanFile {
	last := map[string]int{}
	for i, f := range files {
		last[f.Path] = i
	}
	var out []PlanFile
	for i, f := range files {
		if last[f.Path] == i {
			out = append(out, f)
		}
	}
	return out
}

func modeOr(m, def Mode) Mode {
	if m == 0 {
		return def
	}
	return m
}

func ownerOr(o string) string {
	if o == "" {
		return "root:root"
	}
	if !strings.Contains(o, ":") {
		return o + ":" + o
	}
	return o
}

// imageInputs is everything that shapes the image, in a canonical form.
func imageInputs(p *Plan) any {
	r := p.Recipe
	return struct {
		Base, Mode, Mirror string
		Packages           []string
		Users              []User
		Files, Deferred    []PlanFile
		Units              []Unit
		Commands           []PlanCommand
		Disk               Disk
	}{r.Base, r.Bake.Mode, r.Bake.Mirror, p.Packages, p.Users, p.Files, p.Deferred, p.Units, p.Commands, r.Disk}
}

func bootInputs(p *Plan) any {
	files := make([]any, len(p.Boot.Files))
	for i, f := range p.Boot.Files {
		// Secrets enter by reference only; rendered files by their origin.
		files[i] = struct {
			Path, Owner, Origin string
			Mode                Mode
			Content             []byte
			Secret              Secret
		}{f.Path, f.Owner, f.Origin, f.Mode, f.Content, f.Secret}
	}
	return struct {
		Hostname, Timezone string
		Users              []User
		Files              []any
		Commands           []PlanCommand
		Network            *Network
		DataDisks          []DataDisk
		Checks             []Check
		Roles              []Role
	}{p.Boot.Hostname, p.Boot.Timezone, p.Boot.Users, files, p.Boot.Commands, p.Boot.Network, p.Boot.DataDisks, p.Checks, p.Recipe.Roles}
}

func digest(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("recipe digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
