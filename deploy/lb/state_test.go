package lb

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func TestDefaultSlots(t *testing.T) {
	for n, want := range map[int]int{0: 8, 1: 8, 4: 8, 5: 16, 8: 16, 9: 24, 11: 24, 12: 24, 13: 32, 100: 200} {
		if got := defaultSlots(n); got != want {
			t.Errorf("defaultSlots(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestAssign(t *testing.T) {
	srv := func(names ...string) []Server {
		var out []Server
		for _, n := range names {
			out = append(out, Server{Name: n, Addr: "127.0.0.1:1", State: Ready})
		}
		return out
	}
	slots := func(ms []member) map[string]int {
		out := map[string]int{}
		for _, m := range ms {
			out[m.Name] = m.Slot
		}
		return out
	}
	none := func(int) bool { return false }

	t.Run("first", func(t *testing.T) {
		ms, n := assign(nil, srv("a", "b", "c"), 8, none)
		if want := map[string]int{"a": 0, "b": 1, "c": 2}; !reflect.DeepEqual(slots(ms), want) || n != 8 {
			t.Errorf("got %v in %d slots, want %v in 8", slots(ms), n, want)
		}
	})
	t.Run("members keep their slots", func(t *testing.T) {
		old, _ := assign(nil, srv("a", "b", "c"), 8, none)
		ms, _ := assign(old, srv("c", "d", "a"), 8, none)
		if want := map[string]int{"a": 0, "c": 2, "d": 1}; !reflect.DeepEqual(slots(ms), want) {
			t.Errorf("got %v, want %v (d takes b's free slot)", slots(ms), want)
		}
		for i := 1; i < len(ms); i++ {
			if ms[i-1].Slot >= ms[i].Slot {
				t.Errorf("members not in slot order: %v", ms)
			}
		}
	})
	t.Run("busy slot skipped", func(t *testing.T) {
		old, _ := assign(nil, srv("a", "b", "c"), 8, none)
		ms, _ := assign(old, srv("a", "c", "d"), 8, func(i int) bool { return i == 1 })
		if want := map[string]int{"a": 0, "c": 2, "d": 3}; !reflect.DeepEqual(slots(ms), want) {
			t.Errorf("got %v, want %v (b's slot still has sessions)", slots(ms), want)
		}
	})
	t.Run("outgrown", func(t *testing.T) {
		old, _ := assign(nil, srv("a", "b", "c", "d", "e", "f", "g", "h"), 8, none)
		ms, n := assign(old, srv("a", "b", "c", "d", "e", "f", "g", "h", "i"), 8, none)
		if n != 24 || slots(ms)["i"] != 8 || slots(ms)["a"] != 0 {
			t.Errorf("9 servers in 8 slots: %v in %d slots, want i in slot 8 of 24", slots(ms), n)
		}
	})
	t.Run("outgrown by busy slots", func(t *testing.T) {
		old, _ := assign(nil, srv("a"), 8, none)
		ms, n := assign(old, srv("a", "b"), 8, func(i int) bool { return i > 0 })
		if n != 16 || slots(ms)["b"] != 8 {
			t.Errorf("every free slot busy: %v in %d slots, want b in slot 8 of 16", slots(ms), n)
		}
	})
}

func TestConfig(t *testing.T) {
	st := &state{Name: "web", Listen: "127.0.0.1:8000", Balance: LeastConn, Slots: 4, Servers: []member{
		{Server{Name: "web-0", Addr: "127.0.0.1:41000", State: Ready}, 0},
		{Server{Name: "web-2", Addr: "[::1]:41002", State: Drain}, 2},
		{Server{Name: "web-3", Addr: "127.0.0.1:41003", State: Maint}, 3},
	}}
	cfg := string(st.config("/run/lb"))
	for _, want := range []string{
		"\tstats socket /run/lb/admin.sock mode 600 level admin expose-fd listeners\n",
		"\tretries 3\n\toption redispatch 1\n",
		"frontend web\n\tbind 127.0.0.1:8000\n\tdefault_backend web\n",
		"backend web\n\tbalance leastconn\n" +
			"\tserver s0 127.0.0.1:41000 # web-0\n" +
			"\tserver s1 127.0.0.1:9 disabled\n" +
			"\tserver s2 [::1]:41002 disabled # web-2 (drain)\n" +
			"\tserver s3 127.0.0.1:41003 disabled # web-3 (maint)\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, " check") {
		t.Errorf("haproxy.cfg has HAProxy health checks; kiln probes:\n%s", cfg)
	}
}

// A guest's config: kiln's sockets belong to kiln's account, the workers
// run as haproxy (Debian's package makes the account), and HAProxy takes
// it: `haproxy -c` of the host's own HAProxy, the drop-in's master
// socket option included.
func TestGuestConfig(t *testing.T) {
	st := &state{Name: "web", Listen: "0.0.0.0:80", Balance: RoundRobin, Slots: 8, GuestUser: "kiln-lb", Servers: []member{
		{Server{Name: "web-0", Addr: "10.0.2.2:41000", State: Ready}, 0},
	}}
	cfg := string(st.config(""))
	for _, want := range []string{
		"\tuser haproxy\n\tgroup haproxy\n",
		"\tstats socket " + guestAdminSock + " user kiln-lb mode 600 level admin expose-fd listeners\n",
		"\tserver s0 10.0.2.2:41000 # web-0\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the guest's haproxy.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if !strings.Contains(guestDropInText("kiln-lb"), `"EXTRAOPTS=-S `+guestMasterSock+`,user,kiln-lb,mode,600"`) {
		t.Errorf("drop-in: %s", guestDropInText("kiln-lb"))
	}
	// The drop-in survives the shell it is written by (its comment has
	// apostrophes).
	out, err := exec.Command("sh", "-c", withDropIn("kiln-lb", `printf '%s\n' "$DROPIN"`)).Output()
	if err != nil || string(out) != guestDropInText("kiln-lb") {
		t.Errorf("drop-in through the shell: %q %v", out, err)
	}
	bin := testutil.NeedTool(t, "haproxy")
	// The host has no kiln-lb account: the check runs with root's sockets.
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(path, []byte(strings.ReplaceAll(cfg, " user kiln-lb", " user root")), 0o600)
	if err := checkConfig(context.Background(), bin, path); err != nil {
		t.Error(err)
	}
}

func TestTrimLog(t *testing.T) {
	b := &Balancer{dir: t.TempDir()}
	log := filepath.Join(b.dir, logFile)
	small := []byte("[WARNING] a line\n")
	os.WriteFile(log, small, 0o600)
	b.trimLog()
	if got, _ := os.ReadFile(log); !bytes.Equal(got, small) {
		t.Errorf("a small log was trimmed: %q", got)
	}
	big := bytes.Repeat(small, maxLog/len(small)+1)
	os.WriteFile(log, big, 0o600)
	b.trimLog()
	got, _ := os.ReadFile(log)
	old, _ := os.ReadFile(log + ".1")
	if len(got) != 0 || !bytes.Equal(old, big) {
		t.Errorf("a log over %d bytes: %d bytes left, %d in .1; want 0 and all of it", maxLog, len(got), len(old))
	}
}
