package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestGenerated regenerates the HCL2 specs and doc partials (go generate,
// packer-sdc) in a copy of this module and fails when they differ from
// what is committed: run `go generate ./...` here after changing a Config.
func TestGenerated(t *testing.T) {
	testutil.Integration(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	generated := func(p string) bool {
		return strings.HasSuffix(p, ".hcl2spec.go") || strings.HasPrefix(p, "docs-partials"+string(filepath.Separator))
	}
	// packer-sdc struct-markdown finds the module root by its directory
	// name, packer-plugin-*: the copy needs one.
	tmp := filepath.Join(t.TempDir(), "packer-plugin-kiln")
	want := map[string]string{}
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if generated(p) {
			want[p] = string(b)
			return nil // the copy must make its own
		}
		if err := os.MkdirAll(filepath.Join(tmp, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"mod", "edit", "-replace", "github.com/kiln-project/kiln=" + root},
		{"generate", "./..."},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	got := map[string]string{}
	filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(tmp, p)
			if generated(rel) {
				b, _ := os.ReadFile(p)
				got[rel] = string(b)
			}
		}
		return nil
	})
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s is committed but no longer generated: remove it", p)
		} else if g != w {
			t.Errorf("%s is stale: run go generate ./... in cmd/packer-plugin-kiln", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is generated but not committed: run go generate ./... and commit it", p)
		}
	}
}
