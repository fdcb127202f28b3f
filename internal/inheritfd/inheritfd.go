// Package inheritfd stops descriptors a process inherited from passing on
// to the programs it runs.
//
// Go opens its own files close-on-exec, but descriptors a process inherits
// open stay open in every child: Packer hands its plugins a few (its
// output, /dev/null), a shell script may have some (exec 3>log). Passed on
// to mmdebstrap, they push the descriptor of its pipe to apt above 9, and
// dash, which runs apt's hooks, cannot redirect to a two-digit descriptor:
// the bake fails with "Bad fd number". kiln's commands and the Packer
// plugin call CloseOnExec first thing.
package inheritfd

import (
	"os"
	"strconv"
	"syscall"
)

// CloseOnExec marks every open descriptor above standard error
// close-on-exec. The process itself keeps using them; only programs it
// starts no longer get them (os/exec passes what it is given explicitly).
func CloseOnExec() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return // not Linux, or no /proc: nothing to do that is safe
	}
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 || fd == self {
			continue
		}
		syscall.CloseOnExec(fd)
	}
	d.Close()
}
