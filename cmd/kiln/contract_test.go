package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The CLI contract: -o is the output path and -O the format on every
// command; --output json gives one envelope on every command, with [] for
// empty lists; exit codes 0/1/2; usage hints name the subcommand; recipe
// problems are printed one per line, file:line:col first.

// envelopeOf decodes the last JSON object kiln printed (progress events
// come before it) and checks its shape.
func envelopeOf(t *testing.T, r result) map[string]any {
	t.Helper()
	out := strings.TrimSpace(r.stdout)
	i := strings.LastIndex(out, "\n{\n")
	if i >= 0 {
		out = out[i+1:]
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(out), &env); err != nil {
		t.Fatalf("not one JSON result: %v\n%s", err, r.stdout)
	}
	if env["type"] != "result" || env["command"] == nil || env["ok"] == nil {
		t.Errorf("envelope lacks type/ok/command: %s", out)
	}
	if where := findNull(env, ""); where != "" {
		t.Errorf("null at %s (lists must be [], absent values omitted): %s", where, out)
	}
	if ok, _ := env["ok"].(bool); ok != (r.code == 0) {
		t.Errorf("ok is %v but the exit code is %d", env["ok"], r.code)
	}
	if r.code != 0 {
		e, _ := env["error"].(map[string]any)
		if e == nil || e["message"] == "" || e["problems"] == nil {
			t.Errorf("a failure without error.message and error.problems: %s", out)
		}
	}
	return env
}

func TestJSONEverywhere(t *testing.T) {
	dir := t.TempDir()
	ex := examples(t)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: kiln/v1\nname: web\nbake:\n  pakages: [x]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte(strings.Repeat("not an image\n", 100)), 0o644)
	cache := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"version"}, 0},
		{[]string{"roles"}, 0},
		{[]string{"roles", "proxy"}, 0},
		{[]string{"recipe", "validate", filepath.Join(ex, "proxy.yaml")}, 0},
		{[]string{"recipe", "validate", "bad.yaml"}, 2},
		{[]string{"render", filepath.Join(ex, "proxy.yaml")}, 0},
		{[]string{"render", filepath.Join(ex, "proxy.yaml"), "-o", filepath.Join(dir, "rendered")}, 0},
		{[]string{"seed", filepath.Join(ex, "proxy.yaml"), "-o", filepath.Join(dir, "s.iso")}, 0},
		{[]string{"seed", "bad.yaml", "-o", filepath.Join(dir, "s.iso")}, 2},
		{[]string{"lint", "notes.txt"}, 2},
		{[]string{"test", "missing.qcow2"}, 2},
		{[]string{"cache", "ls", "--cache-dir", cache}, 0},
		{[]string{"cache", "prune", "--cache-dir", cache}, 0},
		{[]string{"frobnicate"}, 2},
		{[]string{"seed", "--no-such-flag"}, 2},
	} {
		r := run(t, dir, nil, append(c.args, "--output", "json")...)
		if r.code != c.code {
			t.Errorf("kiln %s: exit %d, want %d\n%s%s", strings.Join(c.args, " "), r.code, c.code, r.stdout, r.stderr)
			continue
		}
		env := envelopeOf(t, r)
		if c.args[0] == "render" && len(c.args) == 2 {
			// render -O json prints the documents as JSON, not YAML.
			docs, _ := env["data"].(map[string]any)["documents"].(map[string]any)
			if !strings.HasPrefix(docs["user-data"].(string), "#cloud-config") {
				t.Errorf("render -O json: %v", env)
			}
		}
		if c.args[0] == "recipe" && c.code == 2 {
			p := env["error"].(map[string]any)["problems"].([]any)[0].(map[string]any)
			if p["line"] != 4.0 || p["col"] != 3.0 || p["file"] != "bad.yaml" {
				t.Errorf("problem without its position: %v", p)
			}
		}
	}
}

func TestUsageHints(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, nil, "lint")
	if r.code != 2 || !strings.Contains(r.stderr, "Run 'kiln lint --help' for usage.") {
		t.Errorf("lint without args: %+v", r)
	}
	r = run(t, dir, nil, "seed", filepath.Join(examples(t), "proxy.yaml"), "--output", "seed.iso")
	if r.code != 2 || !strings.Contains(r.stderr, "did you mean -o seed.iso") {
		t.Errorf("--output with a path: %+v", r)
	}
	r = run(t, dir, nil, "render", filepath.Join(examples(t), "proxy.yaml"), "-o", filepath.Join(dir, "out"))
	if r.code != 0 || !strings.Contains(r.stdout, filepath.Join(dir, "out", "user-data")) {
		t.Errorf("render -o: %+v", r)
	}
}

// TestLintEveryArgument: every argument is linted and reported; a file
// that is not an image says so, with exit 2 and no usage hint.
func TestLintEveryArgument(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("notes\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte(strings.Repeat("more notes\n", 1000)), 0o644)
	r := run(t, dir, nil, "lint", "a.txt", "missing.qcow2", "b.txt")
	if r.code != 2 {
		t.Errorf("exit %d, want 2", r.code)
	}
	for _, arg := range []string{"a.txt", "missing.qcow2", "b.txt"} {
		if !strings.Contains(r.stdout, arg+": not a disk image") {
			t.Errorf("%s not reported: %s", arg, r.stdout)
		}
	}
	if strings.Contains(r.stderr, "--help") {
		t.Errorf("a usage hint for an input problem: %s", r.stderr)
	}
}

// TestRecipeErrorsOnePerLine: every command that loads a recipe prints its
// problems the way recipe validate does, for editors to jump to.
func TestRecipeErrorsOnePerLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: kiln/v1\nname: web\nbake:\n  pakages: [x]\ndisk: {sise: 4GiB}\n"), 0o644)
	for _, args := range [][]string{{"recipe", "validate"}, {"seed", "-o", "x.iso"}, {"render"}, {"bake", "--cache-dir", t.TempDir()}, {"test"}} {
		r := run(t, dir, nil, append(args, "bad.yaml")...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		var problems []string
		for _, l := range lines {
			if strings.HasPrefix(l, "bad.yaml:") {
				problems = append(problems, l)
			}
		}
		if r.code != 2 || len(problems) != 2 || !strings.HasPrefix(problems[0], "bad.yaml:4:3: ") || !strings.HasPrefix(problems[1], "bad.yaml:5:8: ") {
			t.Errorf("kiln %s: exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func TestBadSourceDateEpoch(t *testing.T) {
	r := run(t, t.TempDir(), []string{"SOURCE_DATE_EPOCH=123abc"}, "seed", filepath.Join(examples(t), "proxy.yaml"), "-o", "x.iso")
	if r.code != 2 || !strings.Contains(r.stderr, "SOURCE_DATE_EPOCH") || !strings.Contains(r.stderr, "digits only") {
		t.Errorf("%+v", r)
	}
	r = run(t, t.TempDir(), []string{"SOURCE_DATE_EPOCH=1700000000"}, "seed", filepath.Join(examples(t), "proxy.yaml"), "-o", "x.iso")
	if r.code != 0 {
		t.Errorf("%+v", r)
	}
}

// TestCachePruneDefault: kiln cache prune without flags removes only what
// has not been used for a week, says what it removed and what it freed.
func TestCachePruneDefault(t *testing.T) {
	cache := t.TempDir()
	for key, age := range map[string]time.Duration{"fresh": time.Hour, "stale": 30 * 24 * time.Hour} {
		d := filepath.Join(cache, "images", key)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "image.qcow2"), make([]byte, 1<<20), 0o644)
		when := time.Now().Add(-age)
		os.Chtimes(d, when, when)
	}
	r := run(t, t.TempDir(), nil, "cache", "prune", "--cache-dir", cache)
	if r.code != 0 || !strings.Contains(r.stdout, "removed image stale") || !strings.Contains(r.stdout, "freed 1.0 MiB") {
		t.Errorf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(cache, "images", "fresh")); err != nil {
		t.Error("kiln cache prune removed an entry used an hour ago")
	}
	r = run(t, t.TempDir(), nil, "cache", "prune", "--cache-dir", cache, "--all", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would remove image fresh") {
		t.Errorf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(cache, "images", "fresh")); err != nil {
		t.Error("--dry-run removed an entry")
	}
}

// findNull returns the path of the first JSON null in v, or "".
func findNull(v any, path string) string {
	switch v := v.(type) {
	case nil:
		return path
	case map[string]any:
		for k, e := range v {
			if p := findNull(e, path+"/"+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := findNull(e, fmt.Sprintf("%s/%d", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestWarningsPlaced: a literal value that looks like a secret reference
// is warned about at its line, compiler style, naming the secret: field.
func TestWarningsPlaced(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.yaml"), []byte("apiVersion: kiln/v1\nname: w\nboot:\n  files:\n    - {path: /etc/x, content: \"env:DB_PASSWORD\"}\n"), 0o644)
	for _, args := range [][]string{{"recipe", "validate", "w.yaml"}, {"seed", "w.yaml", "-o", "w.iso"}} {
		r := run(t, dir, nil, args...)
		if r.code != 0 || !strings.Contains(r.stderr, "w.yaml:5:31: warning: boot.files[0].content:") || !strings.Contains(r.stderr, "secret: env:DB_PASSWORD") {
			t.Errorf("kiln %s: %+v", strings.Join(args, " "), r)
		}
	}
}
