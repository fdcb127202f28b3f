package disk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// mkfsArgs builds the mkfs.ext4 command that creates the root filesystem
// from a tree, at an offset inside the disk file: no loop device, no mount.
// UUID and hash seed are given, so the same tree makes the same filesystem.
func mkfsArgs(path string, l layout, tree, label, uuid string) []string {
	return []string{
		"-q", "-F", "-t", "ext4",
		"-L", label,
		"-U", uuid,
		"-E", fmt.Sprintf("offset=%d,hash_seed=%s,root_owner=0:0,nodiscard", l.rootOffset, uuid),
		"-d", tree,
		path, fmt.Sprintf("%dk", l.rootSize/1024),
	}
}

func makeRootFS(ctx context.Context, path string, l layout, tree, label, uuid string, epoch time.Time) error {
	cmd := exec.CommandContext(ctx, "mkfs.ext4", mkfsArgs(path, l, tree, label, uuid)...)
	// e2fsprogs stamps the filesystem with this time instead of the clock.
	// e2fsprogs 1.47.1 and later add each directory's entries sorted
	// (alphasort, which follows LC_COLLATE): byte order, on every host.
	cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", e2fsTime(epoch)), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "No space left") || strings.Contains(msg, "Could not allocate block") {
			return fmt.Errorf("disk: the root tree does not fit in a %d MiB filesystem; raise disk.size: %s", l.rootSize/mib, msg)
		}
		return fmt.Errorf("disk: mkfs.ext4: %v: %s", err, msg)
	}
	return pinTimes(ctx, path, l, epoch)
}
