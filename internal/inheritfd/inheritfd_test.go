package inheritfd

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A descriptor inherited open (here: made so by hand) reaches a child
// before CloseOnExec, and not after; the process can still use it.
func TestCloseOnExec(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "inherited")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0); errno != 0 {
		t.Fatal(errno)
	}
	open := func() bool {
		out, err := exec.Command("ls", "/proc/self/fd").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range strings.Fields(string(out)) {
			if n == strconv.Itoa(fd) {
				return true
			}
		}
		return false
	}
	if !open() {
		t.Fatalf("descriptor %d is not inherited even before CloseOnExec: the test proves nothing", fd)
	}
	CloseOnExec()
	if open() {
		t.Errorf("descriptor %d still reaches a child after CloseOnExec", fd)
	}
	if _, err := f.WriteString("still usable"); err != nil {
		t.Errorf("the process lost its own descriptor: %v", err)
	}
}
