package recipes

import (
	"errors"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// supported is how errors list the releases a recipe may name.
const supported = "debian:trixie (Debian 13, the default), debian:bookworm (Debian 12), and the aliases debian:stable and debian:oldstable"

func TestSupportedReleases(t *testing.T) {
	if got := SupportedReleases(); got != supported {
		t.Errorf("SupportedReleases() = %q, want %q", got, supported)
	}
	if DefaultBase != "debian:trixie" {
		t.Errorf("DefaultBase = %q, want Debian's current stable, debian:trixie", DefaultBase)
	}
}

// TestReleaseTable keeps the table whole: one default, named by
// DefaultBase and aliased stable; every release has a version of every
// tracked package; newest first; software names roles that exist.
func TestReleaseTable(t *testing.T) {
	defaults, prev := 0, 1<<30
	aliases := map[string]bool{}
	versionRE := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	for _, r := range Releases() {
		if r.Default {
			defaults++
			if "debian:"+r.Codename != DefaultBase || r.Alias != "stable" {
				t.Errorf("default release %s (alias %s) is not DefaultBase %s, or not stable", r.Codename, r.Alias, DefaultBase)
			}
		}
		n, err := strconv.Atoi(r.Version)
		if err != nil || n >= prev {
			t.Errorf("release %s: version %q is not a number below the one before it (newest first)", r.Codename, r.Version)
		}
		prev = n
		if r.Alias == "" || aliases[r.Alias] {
			t.Errorf("release %s: alias %q empty or repeated", r.Codename, r.Alias)
		}
		aliases[r.Alias] = true
		if len(r.Versions) != len(TrackedSoftware()) {
			t.Errorf("release %s tables %d packages, want the %d tracked", r.Codename, len(r.Versions), len(TrackedSoftware()))
		}
		for _, s := range TrackedSoftware() {
			if v := r.Versions[s.Package]; !versionRE.MatchString(v) {
				t.Errorf("release %s: %s version %q is not major or major.minor", r.Codename, s.Package, v)
			}
		}
	}
	if defaults != 1 {
		t.Errorf("%d default releases, want 1", defaults)
	}
	for _, s := range TrackedSoftware() {
		if !s.Base && len(s.Roles) == 0 {
			t.Errorf("%s is tracked for no role and not for the base", s.Package)
		}
		for _, role := range s.Roles {
			if _, ok := roleDefs[role]; !ok {
				t.Errorf("%s names unknown role %q", s.Package, role)
			}
		}
	}
}

func TestParseBaseReleases(t *testing.T) {
	for _, s := range []string{"debian:trixie", "debian:bookworm", "debian:stable", "debian:oldstable"} {
		b, err := ParseBase(s)
		if err != nil || b.Kind != BasePackages || b.String() != s {
			t.Errorf("ParseBase(%q) = %+v, %v", s, b, err)
		}
		if alias := strings.HasSuffix(s, "stable"); b.IsAlias() != alias {
			t.Errorf("%s: IsAlias() = %v, want %v", s, b.IsAlias(), alias)
		}
	}
	cases := []struct{ base, want string }{
		{"debian:bookwrom", `unsupported Debian release "bookwrom" (did you mean debian:bookworm?)`},
		{"debian:trixy", `unsupported Debian release "trixy" (did you mean debian:trixie?)`},
		{"debian:stabel", `unsupported Debian release "stabel" (did you mean debian:stable?)`},
		{"debian:sid", `unsupported Debian release "sid" (Debian's unstable distribution, which changes daily)`},
		{"debian:buster", `unsupported Debian release "buster" (Debian 10, older than kiln supports)`},
		{"debian:forky", `unsupported Debian release "forky" (Debian's next release (14), still in the making)`},
		{"debian:zzz", `unsupported Debian release "zzz"; supported: `},
		{"debian:", `invalid base "debian:"`},
		{"ubuntu:noble", `kiln builds package bases for debian only`},
	}
	for _, c := range cases {
		_, err := ParseBase(c.base)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseBase(%q) = %v, want %q", c.base, err, c.want)
		}
		if err != nil && strings.HasPrefix(c.base, "debian:") && c.base != "debian:" && !strings.HasSuffix(err.Error(), "; supported: "+supported) {
			t.Errorf("ParseBase(%q): %v does not list what is supported", c.base, err)
		}
	}
}

// TestUnsupportedReleaseThroughLoader: recipe validate refuses a release
// kiln does not build at the base field's line and column.
func TestUnsupportedReleaseThroughLoader(t *testing.T) {
	for _, c := range []struct{ base, want string }{
		{"debian:bookwrom", `r.yaml:3:7: base: unsupported Debian release "bookwrom" (did you mean debian:bookworm?); supported: ` + supported},
		{"debian:sid", `r.yaml:3:7: base: unsupported Debian release "sid" (Debian's unstable distribution, which changes daily); supported: ` + supported},
		{"'debian:buster'  # old", `r.yaml:3:7: base: unsupported Debian release "buster"`},
	} {
		dir := writeFiles(t, map[string]string{"r.yaml": header + "base: " + c.base + "\nbake: {packages: [htop]}\n"})
		_, err := LoadAndCheck(filepath.Join(dir, "r.yaml"))
		var el ErrorList
		if !errors.As(err, &el) || len(el) != 1 || !strings.HasPrefix(strings.TrimPrefix(el[0].Error(), dir+string(filepath.Separator)), c.want) {
			t.Errorf("base %s: got %v, want one error %q", c.base, err, c.want)
		}
	}
	for _, base := range []string{"debian:stable", "debian:oldstable", "debian:bookworm", "debian:trixie"} {
		dir := writeFiles(t, map[string]string{"r.yaml": header + "base: " + base + "\n"})
		if _, err := LoadAndCheck(filepath.Join(dir, "r.yaml")); err != nil {
			t.Errorf("base %s: %v", base, err)
		}
	}
}

func TestRoleSoftware(t *testing.T) {
	db, ok := DescribeRole("database")
	if !ok || len(db.Software) != 1 || db.Software[0].Name != "PostgreSQL" ||
		db.Software[0].Versions["trixie"] != "17" || db.Software[0].Versions["bookworm"] != "15" {
		t.Fatalf("database software: %+v", db.Software)
	}
	for _, ri := range Roles() {
		if len(ri.Software) == 0 {
			t.Errorf("role %s lists no software with its versions per release", ri.Name)
		}
	}
	var names []string
	for _, s := range BaseSoftware() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "Linux kernel,systemd,cloud-init,Python" {
		t.Errorf("base software: %v", names)
	}
}
