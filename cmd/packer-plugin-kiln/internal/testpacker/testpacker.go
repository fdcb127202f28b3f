// Package testpacker gives the plugin's tests a real Packer core: Packer
// Version built once per machine from the Go module proxy, in a scratch
// module outside the repository, and kept in the shared test cache
// (testutil.CacheRoot()/packer-<Version>/packer). Debian's packer package
// (1.6) cannot load SDK plugins. A file lock makes parallel test processes
// build it once; a half-built binary never appears at its path.
//
// Run gives each test its own Packer home (HOME, PACKER_CONFIG_DIR,
// PACKER_PLUGIN_PATH and PACKER_CACHE_DIR in a temp dir), with the plugin
// installed by `packer plugins install --path`, so no test touches the
// user's Packer setup or the network.
package testpacker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/testutil"
)

// Version is the Packer core the tests run.
const Version = "v1.12.0"

// goCty is the go-cty fork Packer and the SDK need (their go.mod files
// replace it; a replace does not travel to a module that requires them).
const goCty = "github.com/nywilken/go-cty@v1.13.3"

// buildTimeout bounds a cold build: about 3 minutes on two cores, more on
// a loaded machine.
const buildTimeout = 30 * time.Minute

// Binary returns the path of Packer Version, building it first when the
// test cache has none. It fails the test when the build fails: Go and the
// module proxy are all it needs, so there is nothing to skip for.
func Binary(t testing.TB) string {
	t.Helper()
	testutil.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	start := time.Now()
	bin, built, err := Build(ctx, testutil.CacheRoot())
	if err != nil {
		t.Fatalf("testpacker: %v", err)
	}
	if built {
		t.Logf("testpacker: built Packer %s in %s: %s", Version, time.Since(start).Round(time.Second), bin)
	}
	return bin
}

// Build makes sure root/packer-<Version>/packer exists and runs, building it
// when not; built says whether it did.
func Build(ctx context.Context, root string) (bin string, built bool, err error) {
	dir := filepath.Join(root, "packer-"+Version)
	bin = filepath.Join(dir, "packer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	unlock, err := flock.Lock(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if versionOK(ctx, bin) {
		return bin, false, nil
	}
	scratch, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(scratch)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	tmp := bin + ".tmp"
	steps := [][]string{
		{"mod", "init", "scratch"},
		{"mod", "edit", "-replace", "github.com/zclconf/go-cty=" + goCty},
		{"get", "github.com/hashicorp/packer@" + Version},
		{"build", "-trimpath", "-o", tmp, "github.com/hashicorp/packer"},
	}
	for _, args := range steps {
		cmd := exec.CommandContext(ctx, gobin, args...)
		cmd.Dir = scratch
		// The scratch module is not kiln's: no workspace, no vendoring,
		// the toolchain that runs the tests.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return "", false, fmt.Errorf("building Packer %s: go %s: %v\n%s", Version, strings.Join(args, " "), err, out)
		}
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", false, err
	}
	if !versionOK(ctx, bin) {
		return "", false, fmt.Errorf("built %s, but it does not report version %s", bin, Version)
	}
	return bin, true, nil
}

// versionOK says whether bin runs and is Packer Version.
func versionOK(ctx context.Context, bin string) bool {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	return err == nil && strings.Contains(string(out), strings.TrimPrefix(Version, "v"))
}

// Packer is a Packer core with a home of its own.
type Packer struct {
	Bin  string
	Home string // HOME; config, plugins and cache live below it
	Env  []string
}

// New returns a Packer with a fresh home in t.TempDir().
func New(t testing.TB) *Packer {
	t.Helper()
	home := t.TempDir()
	p := &Packer{Bin: Binary(t), Home: home}
	p.Env = append(os.Environ(),
		"HOME="+home,
		"PACKER_CONFIG_DIR="+filepath.Join(home, ".config", "packer"),
		"PACKER_PLUGIN_PATH="+filepath.Join(home, ".config", "packer", "plugins"),
		"PACKER_CACHE_DIR="+filepath.Join(home, "cache"),
		"CHECKPOINT_DISABLE=1",
		"PACKER_NO_COLOR=1",
	)
	return p
}

// Install installs the plugin binary at path as source (e.g.
// github.com/kiln-project/kiln) with `packer plugins install --path`.
func (p *Packer) Install(t testing.TB, path, source string) {
	t.Helper()
	if out, err := p.Run(context.Background(), "", "plugins", "install", "--path", path, source); err != nil {
		t.Fatalf("packer plugins install --path %s %s: %v\n%s", path, source, err, out)
	}
}

// Run runs packer with args in dir and returns its combined output.
func (p *Packer) Run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd, out := p.Command(ctx, dir, args...)
	err := cmd.Run()
	return out.String(), err
}

// Command is packer with args in dir, not started, and its combined
// output. Packer's own children (the plugin) share its process group; when
// ctx ends the whole group is killed, so no plugin outlives a test.
func (p *Packer) Command(ctx context.Context, dir string, args ...string) (*exec.Cmd, *Output) {
	cmd := exec.CommandContext(ctx, p.Bin, args...)
	cmd.Dir = dir
	cmd.Env = p.Env
	out := &Output{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 10 * time.Second
	return cmd, out
}

// Output collects a running packer's output; safe to read while it runs.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(b)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
