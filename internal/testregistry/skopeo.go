package testregistry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// Skopeo runs skopeo, a second registry client not written by kiln, on its
// own configuration only: an accept-anything policy, no registries.conf or
// registries.d of the host, and a HOME and runtime dir without auth files.
type Skopeo struct {
	bin   string
	flags []string
	env   []string
}

// NewSkopeo finds skopeo (testutil.NeedTool: a skip on a laptop, a failure
// under CI=true) and gives it a configuration in t.TempDir().
func NewSkopeo(t testing.TB) *Skopeo {
	t.Helper()
	bin := testutil.NeedTool(t, "skopeo")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("policy.json", `{"default":[{"type":"insecureAcceptAnything"}]}`)
	registries := write("registries.conf", "unqualified-search-registries = []\n")
	home := mkdir("home")
	return &Skopeo{
		bin: bin,
		flags: []string{
			"--policy", policy,
			"--registries-conf", registries,
			"--registries.d", mkdir("registries.d"),
			"--tmpdir", mkdir("tmp"),
		},
		env: append(os.Environ(),
			"HOME="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_RUNTIME_DIR="+mkdir("run"),
			"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
			"CONTAINERS_REGISTRIES_CONF="+registries,
		),
	}
}

// skopeoTimeout bounds one skopeo run.
const skopeoTimeout = 2 * time.Minute

// Run runs skopeo with args and returns its stdout; a failure is an error
// that carries skopeo's stderr, for tests that expect skopeo to refuse.
func (s *Skopeo) Run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), skopeoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append(append([]string{}, s.flags...), args...)...)
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		return out, fmt.Errorf("skopeo %s: %w\n%s", strings.Join(args, " "), err, stderr)
	}
	return out, nil
}

// MustRun is Run that fails the test when skopeo fails.
func (s *Skopeo) MustRun(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := s.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
