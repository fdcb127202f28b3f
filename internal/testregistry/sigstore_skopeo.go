package testregistry

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/aptsources"
	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/testutil"
)

// Debian 12's skopeo (1.9.3) is built with sigstore turned off by a Debian
// patch: it refuses every image under a sigstoreSigned policy and cannot
// sign ("Debian-local change: sigstore disabled"). Debian 13's skopeo has
// it. SigstoreSkopeo runs that one: from a Debian 13 tree made once with
// mmdebstrap (from the host's apt mirror) into the test cache, through
// chroot, with the host's temp dir bound at the same path so the test's
// files are where skopeo looks.
const sigstoreSuite = "trixie"

// sigstoreTreeVersion names the tree's recipe; bump it when the recipe changes.
const sigstoreTreeVersion = "skopeo-trixie-1"

// SigstoreSkopeo returns a command line that runs a sigstore-capable
// skopeo: prefix it to skopeo's arguments. It builds the tree on first use
// (a minute or two), needs root, mmdebstrap and unshare, and fails under
// CI=true when it cannot.
func SigstoreSkopeo(t testing.TB) []string {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedRoot(t)
	mmdebstrap := testutil.NeedTool(t, "mmdebstrap")
	unshare := testutil.NeedTool(t, "unshare")
	dir := filepath.Join(testutil.CacheDir(t), "tools", sigstoreTreeVersion)
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	unlock, err := flock.Lock(ctx, filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(root, "usr", "bin", "skopeo")); err != nil {
		mirrors, err := aptsources.HostMirrors("/etc/apt")
		if err != nil {
			t.Fatalf("testregistry: the host's apt mirror: %v", err)
		}
		tmp := root + ".tmp"
		os.RemoveAll(tmp)
		args := []string{"--variant=apt", "--include=skopeo,ca-certificates", "--quiet", sigstoreSuite, tmp}
		args = append(args, mirrors.SourceLines(sigstoreSuite)...)
		if out, err := exec.CommandContext(ctx, mmdebstrap, args...).CombinedOutput(); err != nil {
			os.RemoveAll(tmp)
			t.Fatalf("testregistry: mmdebstrap of a %s tree with skopeo: %v\n%s", sigstoreSuite, err, tail(out))
		}
		if err := os.Rename(tmp, root); err != nil {
			t.Fatal(err)
		}
	}
	// The test's files live under the temp dir; inside the tree they must
	// be at the same paths.
	tmpdir, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	script := `mkdir -p "$1$2" && mount --bind "$2" "$1$2" && root=$1 && shift 2 && exec chroot "$root" skopeo "$@"`
	return []string{unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", root, tmpdir}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
