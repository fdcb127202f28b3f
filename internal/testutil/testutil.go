// Package testutil holds helpers shared by kiln's tests: finding the real tools
// integration tests depend on, and failing (not skipping) when CI=true.
package testutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
)

// InCI reports whether the tests run under CI, where no integration test may skip.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// NeedTool returns the path of the named executable. When it is missing the
// test is skipped with a loud message on a laptop, and fails under CI=true,
// because CI installs every tool the tests use (make deps).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	// Debian keeps admin tools in sbin, which a non-root PATH may lack.
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if c := dir + "/" + name; isExecutable(c) {
			return c
		}
	}
	Unavailable(t, "%s not found in PATH (run `make deps`)", name)
	return ""
}

// Unavailable skips the test with the reason, or fails it under CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("integration prerequisite missing under CI: "+format, args...)
	}
	t.Skipf("SKIPPING integration test: "+format, args...)
}

// Integration skips the test under `go test -short`: that is the quick
// pass (make unit, and the race-detector pass of make test). make test's
// full pass runs every integration test, and with CI=true none may skip.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped with -short")
	}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// CacheDir is the kiln cache integration tests share: package bases take
// minutes to build, so every test (and every later run on the same machine)
// reuses them. KILN_TEST_CACHE overrides it.
func CacheDir(t testing.TB) string {
	t.Helper()
	dir := CacheRoot()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CacheRoot is the directory CacheDir returns, for the test harnesses'
// Launch functions, which run outside tests: $KILN_TEST_CACHE, or
// kiln-test-cache in the temp dir. It may not exist yet.
func CacheRoot() string {
	if dir := os.Getenv("KILN_TEST_CACHE"); dir != "" {
		return dir
	}
	return filepath.Join(os.TempDir(), "kiln-test-cache")
}

// NeedRoot skips (or fails under CI) tests that need root: building bases
// with mmdebstrap and chroot.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (mmdebstrap, chroot)")
	}
}

// TakeVMSlot waits until this process is the only one on the machine
// booting a guest, until ctx ends, and returns the release. Test packages
// run in parallel (make test), but two TCG guests on two cores would starve
// each other into timeouts; what does not boot a guest never waits.
func TakeVMSlot(ctx context.Context) (func(), error) {
	return flock.Lock(ctx, filepath.Join(os.TempDir(), "kiln-test-vm.lock"))
}

// VMSlot holds the VM slot (TakeVMSlot) from now until the test ends: for
// tests that boot guests through a kiln process, where the boot cannot be
// hooked. Tests that boot in-process use internal/testguest, which holds
// the slot only while QEMU runs.
func VMSlot(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	release, err := TakeVMSlot(ctx)
	if err != nil {
		t.Fatalf("waiting for the VM slot: %v", err)
	}
	t.Cleanup(release)
}

// NeedGuest is for tests that boot a full guest: QEMU must be there.
func NeedGuest(t testing.TB) {
	t.Helper()
	NeedTool(t, "qemu-system-x86_64")
}
