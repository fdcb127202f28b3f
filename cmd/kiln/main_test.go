package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/internal/testutil"
)

// kilnBin is the CLI built once for these tests: they run it as a user
// would, exit codes and all.
var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-cli-test")
	if err != nil {
		panic(err)
	}
	kilnBin = filepath.Join(dir, "kiln")
	if out, err := exec.Command("go", "build", "-o", kilnBin, ".").CombinedOutput(); err != nil {
		panic("build kiln: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs kiln in dir with env added to a clean environment.
func run(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(kilnBin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func examples(t *testing.T) string {
	p, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	r := run(t, t.TempDir(), nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kiln ") {
		t.Fatalf("version: %+v", r)
	}
	r = run(t, t.TempDir(), nil, "version", "--output", "json")
	var v struct{ Data map[string]string }
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Data["version"] == "" {
		t.Fatalf("version json: %q %v", r.stdout, err)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: kiln/v1\nname: web\nbake:\n  pakages: [x]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("apiVersion: kiln/v1\nname: web\n"), 0o644)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"recipe", "validate", "good.yaml"}, 0, ""},
		{[]string{"recipe", "validate", "bad.yaml"}, 2, `bad.yaml:4:3: bake.pakages: unknown key "pakages" (did you mean "packages"?)`},
		{[]string{"recipe", "validate", "missing.yaml"}, 2, "missing.yaml"},
		{[]string{"recipe", "validate"}, 2, "requires at least 1 arg"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"seed", "good.yaml"}, 2, "missing -o"},
		{[]string{"seed", "good.yaml", "-o", "x.iso", "--format", "udf"}, 2, `unknown seed format "udf"`},
		{[]string{"render", "good.yaml", "--stage", "later"}, 2, `unknown stage "later"`},
		{[]string{"roles", "dbase"}, 2, `unknown role "dbase"`},
		{[]string{"version", "--output", "xml"}, 2, "want text or json"},
		{[]string{"seed", "good.yaml", "-o", "/nonexistent/dir/seed.iso"}, 1, "nonexistent"},
	}
	for _, c := range cases {
		r := run(t, dir, nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.err) {
			t.Errorf("kiln %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.err)
		}
	}
}

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: kiln/v1\nname: web\ndisk: {format: vmdk}\n"), 0o644)
	r := run(t, dir, nil, "recipe", "validate", "--output", "json", "bad.yaml", filepath.Join(examples(t), "proxy.yaml"))
	if r.code != 2 {
		t.Fatalf("exit %d", r.code)
	}
	var env struct {
		OK   bool
		Data struct{ Recipes []validateResult }
	}
	if err := json.Unmarshal([]byte(r.stdout), &env); err != nil || env.OK {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	res := env.Data.Recipes
	if len(res) != 2 || res[0].OK || !res[1].OK || len(res[0].Problems) != 1 {
		t.Fatalf("results: %+v", res)
	}
	p := res[0].Problems[0]
	if p.Line != 3 || p.Col != 16 || p.Path != "disk.format" || !strings.Contains(p.Message, "vmdk") {
		t.Errorf("problem: %+v", p)
	}
}

func TestRenderWritesFiles(t *testing.T) {
	out := t.TempDir()
	r := run(t, t.TempDir(), []string{"APP_DB_PASSWORD=pw-for-test"}, "render", filepath.Join(examples(t), "database.yaml"), "--instance", "db-1", "-o", out)
	if r.code != 0 {
		t.Fatalf("render: %+v", r)
	}
	for _, name := range []string{"user-data", "meta-data"} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		// The database seed holds a password verifier: owner-only files.
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	ud, _ := os.ReadFile(filepath.Join(out, "user-data"))
	md, _ := os.ReadFile(filepath.Join(out, "meta-data"))
	if !bytes.HasPrefix(ud, []byte("#cloud-config\n")) || !bytes.Contains(md, []byte("local-hostname: db-1")) {
		t.Errorf("documents:\n%s\n%s", ud, md)
	}
	if bytes.Contains(ud, []byte("pw-for-test")) {
		t.Error("database password in the seed")
	}
	// Without a secret in the environment the render fails and says which.
	r = run(t, t.TempDir(), nil, "render", filepath.Join(examples(t), "database.yaml"), "-o", t.TempDir())
	if r.code == 0 || !strings.Contains(r.stderr, "APP_DB_PASSWORD is not set") {
		t.Errorf("missing secret: %+v", r)
	}
	// Secrets are never printed.
	r = run(t, t.TempDir(), []string{"APP_DB_PASSWORD=x"}, "render", filepath.Join(examples(t), "database.yaml"))
	if r.code != 2 || strings.Contains(r.stdout, "SCRAM") {
		t.Errorf("seed with secrets printed: %+v", r)
	}
	r = run(t, t.TempDir(), nil, "render", filepath.Join(examples(t), "proxy.yaml"))
	if r.code != 0 || !strings.Contains(r.stdout, "--- # user-data\n#cloud-config\n") {
		t.Errorf("render to stdout: %+v", r)
	}
}

// TestSeedReadBack writes a seed with the CLI and reads it back with the
// system's tools: blkid sees a cidata ISO9660 volume and isoinfo extracts
// exactly the bytes kiln render wrote.
func TestSeedReadBack(t *testing.T) {
	testutil.Integration(t)
	blkid := testutil.NeedTool(t, "blkid")
	isoinfo := testutil.NeedTool(t, "isoinfo")
	work := t.TempDir()
	recipe := filepath.Join(examples(t), "network.yaml") // has all three documents
	rendered := filepath.Join(work, "rendered")
	if r := run(t, work, nil, "render", recipe, "--instance", "web-3", "--index", "3", "-o", rendered); r.code != 0 {
		t.Fatalf("render: %+v", r)
	}
	seed := filepath.Join(work, "seed.iso")
	if r := run(t, work, nil, "seed", recipe, "--instance", "web-3", "--index", "3", "-o", seed); r.code != 0 {
		t.Fatalf("seed: %+v", r)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", seed).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "LABEL=cidata") || !strings.Contains(string(out), "TYPE=iso9660") {
		t.Fatalf("blkid: %v\n%s", err, out)
	}
	for _, name := range []string{"user-data", "meta-data", "network-config"} {
		want, err := os.ReadFile(filepath.Join(rendered, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, ext := range []string{"-R", "-J"} {
			got, err := exec.Command(isoinfo, ext, "-i", seed, "-x", "/"+name).Output()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("isoinfo %s -x /%s: %v; bytes differ from kiln render's:\n%s\n---\n%s", ext, name, err, got, want)
			}
		}
	}
	// Identical inputs give identical bytes.
	seed2 := filepath.Join(work, "seed2.iso")
	run(t, work, nil, "seed", recipe, "--instance", "web-3", "--index", "3", "-o", seed2)
	a, _ := os.ReadFile(seed)
	b, _ := os.ReadFile(seed2)
	if !bytes.Equal(a, b) {
		t.Error("two seeds of the same instance differ")
	}
}

func TestSeedVFAT(t *testing.T) {
	testutil.Integration(t)
	blkid := testutil.NeedTool(t, "blkid")
	mtype := testutil.NeedTool(t, "mtype")
	work := t.TempDir()
	seed := filepath.Join(work, "seed.img")
	r := run(t, work, nil, "seed", filepath.Join(examples(t), "proxy.yaml"), "--format", "vfat", "-o", seed, "--output", "json")
	if r.code != 0 {
		t.Fatalf("seed: %+v", r)
	}
	var env struct{ Data map[string]any }
	if err := json.Unmarshal([]byte(r.stdout), &env); err != nil || env.Data["format"] != "vfat" || env.Data["holdsSecrets"] != false {
		t.Fatalf("json: %q %v", r.stdout, err)
	}
	out, _ := exec.Command(blkid, "-p", "-o", "export", seed).CombinedOutput()
	if !strings.Contains(string(out), "LABEL=CIDATA") || !strings.Contains(string(out), "TYPE=vfat") {
		t.Fatalf("blkid: %s", out)
	}
	ud, err := exec.Command(mtype, "-i", seed, "::/user-data").Output()
	if err != nil || !bytes.HasPrefix(ud, []byte("#cloud-config")) {
		t.Fatalf("mtype: %v %q", err, ud)
	}
	if st, _ := os.Stat(seed); st.Mode().Perm() != 0o644 {
		t.Errorf("seed without secrets has mode %v", st.Mode().Perm())
	}
}

func TestSeedWithSecretsIsPrivate(t *testing.T) {
	work := t.TempDir()
	seed := filepath.Join(work, "db.iso")
	r := run(t, work, []string{"APP_DB_PASSWORD=pw"}, "seed", filepath.Join(examples(t), "database.yaml"), "-o", seed)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if st, _ := os.Stat(seed); st.Mode().Perm() != 0o600 {
		t.Errorf("seed with secrets has mode %v, want 0600", st.Mode().Perm())
	}
}

func TestRoles(t *testing.T) {
	r := run(t, t.TempDir(), nil, "roles")
	for _, name := range []string{"app-host", "cron-runner", "job-runner", "database", "proxy", "network", "healthPath", "jobs[].schedule"} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("kiln roles lacks %s", name)
		}
	}
	// Which release brings which version: the base's software, then each role's.
	for _, line := range []string{"Debian releases: debian:trixie (13, stable, the default), debian:bookworm (12, oldstable)",
		"  SOFTWARE      TRIXIE  BOOKWORM", "  Linux kernel  6.12    6.1", "  cloud-init    25.1    22.4"} {
		if !strings.Contains(r.stdout, line+"\n") {
			t.Errorf("kiln roles lacks the line %q:\n%s", line, r.stdout)
		}
	}
	r = run(t, t.TempDir(), nil, "roles", "database")
	if !strings.Contains(r.stdout, "  SOFTWARE    TRIXIE  BOOKWORM\n  PostgreSQL  17      15\n") || strings.Contains(r.stdout, "Linux kernel") {
		t.Errorf("kiln roles database: PostgreSQL versions per release, and only the role's:\n%s", r.stdout)
	}
	r = run(t, t.TempDir(), nil, "roles", "database", "--output", "json")
	var env struct {
		Data struct {
			Roles []struct {
				Name     string
				Software []struct {
					Package, Name string
					Versions      map[string]string
				}
			}
			Releases []struct {
				Codename, Version, Alias string
				Default                  bool
				Versions                 map[string]string
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &env); err != nil || len(env.Data.Roles) != 1 || env.Data.Roles[0].Name != "database" {
		t.Fatalf("roles json: %v %q", err, r.stdout)
	}
	sw := env.Data.Roles[0].Software
	if len(sw) != 1 || sw[0].Package != "postgresql" || sw[0].Versions["trixie"] != "17" || sw[0].Versions["bookworm"] != "15" {
		t.Errorf("database software in json: %+v", sw)
	}
	rel := env.Data.Releases
	if len(rel) != 2 || rel[0].Codename != "trixie" || !rel[0].Default || rel[0].Alias != "stable" || rel[0].Versions["haproxy"] != "3.0" ||
		rel[1].Codename != "bookworm" || rel[1].Version != "12" || rel[1].Versions["haproxy"] != "2.6" {
		t.Errorf("releases in json: %+v", rel)
	}
}

// TestUnsupportedRelease: recipe validate refuses a Debian release kiln does
// not build at the base field, lists what it builds and suggests the
// nearest; the aliases validate.
func TestUnsupportedRelease(t *testing.T) {
	dir := t.TempDir()
	const supported = "supported: debian:trixie (Debian 13, the default), debian:bookworm (Debian 12), and the aliases debian:stable and debian:oldstable"
	for name, base := range map[string]string{"typo": "debian:bookwrom", "sid": "debian:sid", "buster": "debian:buster", "stable": "debian:stable", "oldstable": "debian:oldstable"} {
		os.WriteFile(filepath.Join(dir, name+".yaml"), []byte("apiVersion: kiln/v1\nname: web\nbase: "+base+"\n"), 0o644)
	}
	for name, want := range map[string]string{
		"typo":   `typo.yaml:3:7: base: unsupported Debian release "bookwrom" (did you mean debian:bookworm?); ` + supported,
		"sid":    `sid.yaml:3:7: base: unsupported Debian release "sid" (Debian's unstable distribution, which changes daily); ` + supported,
		"buster": `buster.yaml:3:7: base: unsupported Debian release "buster" (Debian 10, older than kiln supports); ` + supported,
	} {
		r := run(t, dir, nil, "recipe", "validate", name+".yaml")
		if r.code != 2 || !strings.Contains(r.stderr, want+"\n") {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", name, r.code, r.stderr, want)
		}
	}
	r := run(t, dir, nil, "recipe", "validate", "--output", "json", "typo.yaml")
	var env struct {
		Data struct{ Recipes []validateResult }
	}
	if err := json.Unmarshal([]byte(r.stdout), &env); err != nil || len(env.Data.Recipes) != 1 || len(env.Data.Recipes[0].Problems) != 1 {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	if p := env.Data.Recipes[0].Problems[0]; p.Line != 3 || p.Col != 7 || p.Path != "base" || !strings.Contains(p.Message, "did you mean debian:bookworm?") {
		t.Errorf("problem: %+v", p)
	}
	if r := run(t, dir, nil, "recipe", "validate", "stable.yaml", "oldstable.yaml"); r.code != 0 {
		t.Errorf("the aliases: exit %d, %s", r.code, r.stderr)
	}
}

// TestConfigPrecedence: flags win over KILN_* environment, which wins over kiln.yaml.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte("output: json\n"), 0o644)
	if r := run(t, dir, nil, "version"); !strings.HasPrefix(r.stdout, "{") {
		t.Errorf("kiln.yaml output: json ignored: %q", r.stdout)
	}
	if r := run(t, dir, []string{"KILN_OUTPUT=text"}, "version"); !strings.HasPrefix(r.stdout, "kiln ") {
		t.Errorf("KILN_OUTPUT=text did not win over kiln.yaml: %q", r.stdout)
	}
	if r := run(t, dir, []string{"KILN_OUTPUT=text"}, "version", "--output", "json"); !strings.HasPrefix(r.stdout, "{") {
		t.Errorf("--output json did not win over KILN_OUTPUT: %q", r.stdout)
	}
	os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte("output: [json\n"), 0o644)
	if r := run(t, dir, nil, "version"); r.code != 2 || !strings.Contains(r.stderr, "kiln.yaml") {
		t.Errorf("broken kiln.yaml: %+v", r)
	}
}

// TestLazyRegexps compiles every expression kiln compiles on first use:
// a bad one would otherwise fail only when a command first reaches it.
func TestLazyRegexps(t *testing.T) {
	all := lazyre.All()
	if len(all) < 20 {
		t.Fatalf("only %d lazy expressions: are the packages linked?", len(all))
	}
	for _, l := range all {
		if _, err := regexp.Compile(l.String()); err != nil {
			t.Errorf("%q: %v", l, err)
		}
	}
}

// runInProcess runs kiln in this test binary, for commands that need no
// separate process.
func runInProcess(t *testing.T, args ...string) result {
	t.Helper()
	root := newRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	cfgLoaded, resultPrinted = false, false
	cmd, err := root.ExecuteC()
	code := reportError(cmd, &errb, err)
	return result{out.String(), errb.String(), code}
}
