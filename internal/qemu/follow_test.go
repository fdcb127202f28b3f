package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFollowConsole: lines arrive as the guest writes them, terminal
// control stripped, a line split across writes whole, and the last
// unterminated line once QEMU exits.
func TestFollowConsole(t *testing.T) {
	log := filepath.Join(t.TempDir(), "console.log")
	m := &Machine{console: log, done: make(chan struct{})}
	got := make(chan string, 10)
	go func() {
		m.FollowConsole(context.Background(), func(l string) bool { got <- l; return true })
		close(got)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-got:
			if !ok {
				t.Fatal("the follower stopped early")
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10s")
		}
		return ""
	}
	f, _ := os.Create(log)
	defer f.Close()
	f.WriteString("\x1b[0;32m  OK  \x1b[0m] Reached\r\nsecond li")
	// The follower has read the first write once its first line arrives;
	// the rest of the second line comes in another write.
	if l := next(); l != "  OK  ] Reached" {
		t.Fatalf("first line %q", l)
	}
	f.WriteString("ne\nunterminated")
	if l := next(); l != "second line" {
		t.Fatalf("second line %q", l)
	}
	close(m.done) // QEMU exits: the last partial line is delivered
	var rest []string
	for l := range got {
		rest = append(rest, l)
	}
	if strings.Join(rest, "|") != "unterminated" {
		t.Fatalf("after exit %q", rest)
	}
}
