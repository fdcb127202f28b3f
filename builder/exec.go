package builder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// commandError is a failed external command, with the tail of its output so
// the user sees why without digging through logs.
type commandError struct {
	What     string // e.g. "bake.commands[2]: systemctl enable foo"
	ExitCode int
	Output   string // last lines of combined output
	Err      error
}

func (e *commandError) Error() string {
	var b strings.Builder
	b.WriteString(e.What)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " failed with exit code %d", e.ExitCode)
	} else {
		fmt.Fprintf(&b, " failed: %v", e.Err)
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		b.WriteString(":\n    ")
		b.WriteString(strings.ReplaceAll(out, "\n", "\n    "))
	}
	return b.String()
}

func (e *commandError) Unwrap() error { return e.Err }

// tailLines keeps the last n lines written to it.
type tailLines struct {
	mu    sync.Mutex
	n     int
	lines []string
	part  []byte
}

func (t *tailLines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	return len(p), nil
}

func (t *tailLines) add(l string) {
	t.lines = append(t.lines, strings.TrimRight(l, "\r"))
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tailLines) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.part) > 0 {
		lines = append(append([]string{}, lines...), string(t.part))
	}
	return strings.Join(lines, "\n")
}

// runCmd runs cmd in its own process group (killed as a whole when ctx
// ends), sends each output line to onLine when set, and returns the output
// tail in a *commandError on failure.
func runCmd(ctx context.Context, what string, cmd *exec.Cmd, onLine func(string)) (string, error) {
	tail := &tailLines{n: 40}
	var all bytes.Buffer
	var w io.Writer = io.MultiWriter(tail, &all)
	var pw *io.PipeWriter
	done := make(chan struct{})
	if onLine != nil {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		w = io.MultiWriter(w, pw)
		go func() {
			defer close(done)
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				onLine(sc.Text())
			}
			io.Copy(io.Discard, pr)
		}()
	} else {
		close(done)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, killed as a whole on cancel; and killed with
	// kiln if kiln dies, so a SIGKILLed build leaves nothing running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if pw != nil {
		pw.Close()
	}
	<-done
	if err == nil {
		return all.String(), nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	ce := &commandError{What: what, ExitCode: -1, Output: tail.String(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.ExitCode = ee.ExitCode()
	}
	return all.String(), ce
}
