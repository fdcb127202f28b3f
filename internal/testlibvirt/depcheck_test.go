package testlibvirt

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestDepcheck keeps the harness small: of kiln it may use testutil (and
// what testutil uses), of the rest the standard library and go-libvirt
// (with the x/crypto its SSH dialer needs); its tests may add libvirtxml.
func TestDepcheck(t *testing.T) {
	testutil.CheckImports(t, "internal/testutil", "internal/flock")

	deps := goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	tests := goList(t, "-f", "{{join .TestImports \"\\n\"}}", ".")
	libvirt := []string{"github.com/digitalocean/go-libvirt", "golang.org/x/crypto/"}
	for _, c := range []struct {
		what    string
		pkgs    []string
		allowed []string
	}{
		{"the harness", deps, libvirt},
		{"its tests", tests, append(libvirt, "libvirt.org/go/libvirtxml")},
	} {
		for _, p := range c.pkgs {
			if strings.HasPrefix(p, testutil.Module+"/") || !strings.Contains(strings.Split(p, "/")[0], ".") {
				continue // kiln (checked above) or the standard library
			}
			ok := false
			for _, a := range c.allowed {
				ok = ok || strings.HasPrefix(p, a)
			}
			if !ok {
				t.Errorf("%s must not depend on %s (allowed outside kiln and std: %v)", c.what, p, c.allowed)
			}
		}
	}
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}
