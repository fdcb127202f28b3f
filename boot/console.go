package boot

import (
	"context"
	"strings"
)

// FatalConsole are console lines after which a guest never comes up.
var FatalConsole = []string{
	"Kernel panic",
	"Gave up waiting for root file system device",
	"Dropping to a shell!",
	"You are in emergency mode",
	"error: file '/vmlinuz' not found",
	"error: file '/initrd.img' not found",
	"error: no such device",
	"you need to load the kernel first",
	"No bootable device",
	"Boot failed: not a bootable disk",
	// cloud-init's final message names its datasource: None means the seed
	// was never found, so nothing it asks for will ever exist.
	"Datasource DataSourceNone",
	// A unit skipped to break a cycle never runs: a role's service is broken.
	"Ordering cycle found, skipping",
}

// WatchFatal follows the console until ctx ends. When a line in
// FatalConsole shows up it is sent on the returned channel (buffered, at
// most one) and cancel is called, so waits on ctx end at once.
func WatchFatal(ctx context.Context, m Machine, cancel context.CancelFunc) <-chan string {
	found := make(chan string, 1)
	go m.FollowConsole(ctx, func(line string) bool {
		if f := fatalIn(line); f != "" {
			found <- f
			cancel()
			return false
		}
		return true
	})
	return found
}

// fatalIn returns the fatal part of a console line, or "".
func fatalIn(line string) string {
	for _, f := range FatalConsole {
		if i := strings.Index(line, f); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
	}
	return ""
}
