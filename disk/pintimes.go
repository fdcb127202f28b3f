package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kiln-project/kiln/disk/ext4"
)

// e2fsTime is the time e2fsprogs is given for epoch: it reads
// E2FSPROGS_FAKE_TIME=0 as "use the clock", so the Unix epoch itself
// becomes its first second.
func e2fsTime(epoch time.Time) int64 {
	if s := epoch.Unix(); s > 0 {
		return s
	}
	return 1
}

// pinTimes makes every timestamp of the root filesystem at offset a
// function of the tree's modification times and the epoch alone, so the
// same tree gives the same bytes whenever and wherever it is made.
// mkfs.ext4 -d copies each file's atime and ctime from the tree (when the
// bake last read or changed it, which no program can set) and stamps
// creation times with the clock. debugfs sets them instead: mtime is
// clamped to the epoch (as reproducible-builds.org's SOURCE_DATE_EPOCH
// asks), atime and ctime become the mtime, crtime the epoch; the
// superblock's times are the epoch. debugfs recomputes the checksums.
func pinTimes(ctx context.Context, path string, l layout, epoch time.Time) error {
	script, err := pinScript(path, l, e2fsTime(epoch))
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "kiln-pintimes-*.debugfs")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(script); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", f.Name(), fmt.Sprintf("%s?offset=%d", path, l.rootOffset))
	cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", e2fsTime(epoch)))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("disk: debugfs (pinning file times): %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	// debugfs reports a failed command on stderr and still exits 0; its
	// only other line there is its version banner.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("disk: debugfs (pinning file times): %s", strings.TrimSpace(stderr.String()))
		}
	}
	return nil
}

// pinScript reads the filesystem kiln just made and writes the debugfs
// commands that pin its times: one set per inode (hard links once).
func pinScript(path string, l layout, epoch int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fsys, err := ext4.Open(io.NewSectionReader(f, l.rootOffset, l.rootSize), l.rootSize)
	if err != nil {
		return nil, fmt.Errorf("disk: reading back the root filesystem: %w", err)
	}
	var b bytes.Buffer
	for _, field := range []string{"mkfs_time", "wtime", "lastcheck"} {
		fmt.Fprintf(&b, "ssv %s @%d\n", field, epoch)
	}
	seen := map[uint32]bool{}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in, ok := info.Sys().(*ext4.Inode)
		if !ok {
			return fmt.Errorf("no inode for %s", p)
		}
		if seen[in.InodeNumber] {
			return nil
		}
		seen[in.InodeNumber] = true
		m := min(in.ModTime.Unix(), epoch)
		fmt.Fprintf(&b, "sif <%d> mtime @%d\nsif <%d> atime @%d\nsif <%d> ctime @%d\nsif <%d> crtime @%d\n",
			in.InodeNumber, m, in.InodeNumber, m, in.InodeNumber, m, in.InodeNumber, epoch)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk: reading back the root filesystem: %w", err)
	}
	return b.Bytes(), nil
}
