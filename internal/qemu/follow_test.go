package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFollowConsole(t *testing.T) {
	log := filepath.Join(t.TempDir(), "console.log")
	m := &Machine{console: log, done: make(chan struct{})}
	got := make(chan string, 10)
	go func() {
		m.FollowConsole(context.Background(), func(l string) bool { got <- l; return true })
		close(got)
	}()
	f, _ := os.Create(log)
	f.WriteString("\x1b[0;32m  OK  \x1b[0m] Reached\r\nsecond li")
	time.Sleep(3 * consolePoll)
	f.WriteString("ne\nunterminated")
	f.Close()
	time.Sleep(3 * consolePoll)
	close(m.done) // QEMU exits: the last partial line is delivered
	var lines []string
	for l := range got {
		lines = append(lines, l)
	}
	if strings.Join(lines, "|") != "  OK  ] Reached|second line|unterminated" {
		t.Fatalf("lines %q", lines)
	}
}
