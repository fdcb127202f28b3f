//go:build linux

package lb

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// ours reports whether pid is a live process running HAProxy with cfg
// ("-f cfg" in its command line): neither gone, nor a zombie (nobody may
// reap an orphan), nor another program that was given a reused pid.
func ours(pid int, cfg string) bool {
	// The command line reads empty while a process executes another
	// program, and HAProxy's master executes itself again after starting
	// its first worker and at every reload: look again, briefly.
	for try := 0; ; try++ {
		yes, blank := runs(pid, cfg)
		if !blank || try == 20 {
			return yes
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runs reads pid's state and command line once; blank says the command
// line was empty (a kernel thread, or a process executing a program).
func runs(pid int, cfg string) (yes, blank bool) {
	if pid <= 0 {
		return false, false
	}
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return false, false
	}
	// pid (comm) S ...: the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false, false
	}
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return false, false
	}
	return bytes.Contains(append([]byte{0}, cmdline...), []byte("\x00-f\x00"+cfg+"\x00")), len(cmdline) == 0
}

// leftovers lists the live processes running cfg: workers whose master was
// killed, until they notice and exit. (Workers never execute a program,
// so one look at each process is enough.)
func leftovers(cfg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if yes, _ := runs(pid, cfg); yes {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
