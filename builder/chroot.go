package builder

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
)

// chroot runs programs inside a root tree. Each run gets private mount and
// PID namespaces with /proc, /sys, /dev and /run mounted into the tree, so
// package scripts work. When the run ends — or kiln is killed — the PID
// namespace's init dies, the kernel kills everything left in it (no daemon a
// package started survives), and the mounts vanish with the namespace.
type chroot struct {
	dir   string
	binds []bind
	env   []string
}

// bind mounts a host directory at a path inside the tree.
type bind struct{ host, guest string }

// chrootScript sets up the mounts, then replaces itself with chroot.
const chrootScript = `set -e
r="$KILN_ROOT"
mount -t proc proc "$r/proc"
mount -t sysfs sys "$r/sys" 2>/dev/null || true
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
	mkdir -p "$r$2"
	mount --bind "$1" "$r$2"
	shift 2
done
shift
exec chroot "$r" "$@"
`

// command builds the command that runs argv inside the tree.
func (c *chroot) command(ctx context.Context, stdin io.Reader, argv ...string) *exec.Cmd {
	args := []string{"--mount", "--pid", "--propagation", "private", "--fork", "--kill-child", "sh", "-c", chrootScript, "kiln-chroot"}
	for _, b := range c.binds {
		args = append(args, b.host, b.guest)
	}
	args = append(args, "--")
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Stdin = stdin
	cmd.Env = append([]string{
		"KILN_ROOT=" + filepath.Clean(c.dir),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LC_ALL=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
		"DEBCONF_NONINTERACTIVE_SEEN=true",
	}, c.env...)
	return cmd
}

// run runs argv in the tree; what names it in errors.
func (c *chroot) run(ctx context.Context, what string, onLine func(string), argv ...string) (string, error) {
	return runCmd(ctx, what, c.command(ctx, nil, argv...), onLine)
}
