package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// consoleTailLines is how many console lines errors quote.
const consoleTailLines = 20

// consolePoll is how often WaitConsole reads the console log.
const consolePoll = 100 * time.Millisecond

// consoleTailBytes bounds how much of the log ConsoleTail reads.
const consoleTailBytes = 256 * 1024

// ConsoleError reports that the guest's serial console did not show what
// was waited for, or that the guest did not power off, with the console's
// last lines as evidence.
type ConsoleError struct {
	// Reason says what went wrong.
	Reason string
	// Tail is the last 20 lines of the serial console, terminal escape
	// sequences removed.
	Tail string
	// Err is the underlying cause (a context error, an *ExitError, a QMP
	// failure), or nil when QEMU exited cleanly.
	Err error
}

func (e *ConsoleError) Error() string {
	if e.Tail == "" {
		return "qemu: " + e.Reason + " (the console is empty)"
	}
	return "qemu: " + e.Reason + "; last console lines:\n    " +
		strings.ReplaceAll(e.Tail, "\n", "\n    ")
}

// Unwrap returns the underlying cause.
func (e *ConsoleError) Unwrap() error { return e.Err }

// WaitConsole polls the serial console until substr appears in it. The
// console text is matched with terminal escape sequences (colours, cursor
// moves, which OVMF sends a lot of) and carriage returns removed, so
// substr should contain neither. It returns a *ConsoleError when QEMU
// exits first or ctx ends.
func (m *Machine) WaitConsole(ctx context.Context, substr string) error {
	w := &consoleWatcher{path: m.console, want: []byte(substr)}
	defer w.close()
	tick := time.NewTicker(consolePoll)
	defer tick.Stop()
	for {
		found, err := w.poll()
		if err != nil {
			return fmt.Errorf("qemu: read console: %w", err)
		}
		if found {
			return nil
		}
		select {
		case <-m.done:
			if found, _ := w.poll(); found { // written just before QEMU exited
				return nil
			}
			reason := fmt.Sprintf("qemu exited before the console showed %q", substr)
			xerr := m.exitErr()
			if xerr != nil {
				reason += ": " + strings.TrimPrefix(xerr.Error(), "qemu: ")
			} else {
				reason += " (the guest powered off)"
			}
			return &ConsoleError{Reason: reason, Tail: m.ConsoleTail(consoleTailLines), Err: xerr}
		case <-ctx.Done():
			return &ConsoleError{
				Reason: fmt.Sprintf("console did not show %q: %v", substr, ctx.Err()),
				Tail:   m.ConsoleTail(consoleTailLines),
				Err:    ctx.Err(),
			}
		case <-tick.C:
		}
	}
}

// ConsoleTail returns the last n lines of the serial console, with
// terminal escape sequences and carriage returns removed.
func (m *Machine) ConsoleTail(n int) string { return consoleTail(m.console, n) }

func consoleTail(path string, n int) string {
	if n <= 0 {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	var off int64
	if st.Size() > consoleTailBytes {
		off = st.Size() - consoleTailBytes
	}
	data, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return ""
	}
	if off > 0 { // the first line is cut: drop it
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	var s termStripper
	lines := strings.Split(string(s.strip(nil, data)), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " \t")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// consoleWatcher reads a growing console log incrementally and looks for
// want in its stripped text.
type consoleWatcher struct {
	path   string
	want   []byte
	f      *os.File
	strip  termStripper
	window []byte // stripped text not yet ruled out: at most len(want)-1 bytes
	buf    []byte
}

// poll reads what was appended since the last call and reports whether
// want has appeared. A log that does not exist yet reads as empty.
func (w *consoleWatcher) poll() (bool, error) {
	if len(w.want) == 0 {
		return true, nil
	}
	if w.f == nil {
		f, err := os.Open(w.path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		w.f = f
		w.buf = make([]byte, 64*1024)
	}
	for {
		n, err := w.f.Read(w.buf)
		if n > 0 {
			w.window = w.strip.strip(w.window, w.buf[:n])
			if strings.Contains(string(w.window), string(w.want)) {
				return true, nil
			}
			if keep := len(w.want) - 1; len(w.window) > keep {
				w.window = append(w.window[:0], w.window[len(w.window)-keep:]...)
			}
		}
		if err == io.EOF || n == 0 {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func (w *consoleWatcher) close() {
	if w.f != nil {
		w.f.Close()
	}
}

// termStripper removes terminal control from console output as it
// streams: ANSI escape sequences (CSI such as "\x1b[01;01H", OSC, and
// two- or three-byte ESC sequences), carriage returns and the other C0
// control characters except newline and tab. Its state carries a sequence
// split across calls.
type termStripper struct{ state int }

const (
	stText   = iota
	stEsc    // after ESC
	stEscArg // after ESC and an intermediate such as '(': one more byte
	stCSI    // in ESC [ ... final byte
	stOSC    // in ESC ] ... BEL or ESC \
)

// strip appends the text of src to dst and returns it.
func (s *termStripper) strip(dst, src []byte) []byte {
	for _, b := range src {
		switch s.state {
		case stText:
			switch {
			case b == 0x1b:
				s.state = stEsc
			case b == '\n' || b == '\t' || (b >= 0x20 && b != 0x7f):
				dst = append(dst, b)
			}
		case stEsc:
			switch {
			case b == '[':
				s.state = stCSI
			case b == ']':
				s.state = stOSC
			case b >= 0x20 && b <= 0x2f:
				s.state = stEscArg
			default:
				s.state = stText
			}
		case stEscArg:
			s.state = stText
		case stCSI:
			if b >= 0x40 && b <= 0x7e {
				s.state = stText
			}
		case stOSC:
			switch b {
			case 0x07:
				s.state = stText
			case 0x1b:
				s.state = stEsc
			}
		}
	}
	return dst
}

// FollowConsole calls fn with each line the guest writes to its serial
// console (terminal control stripped), from the start, as it arrives —
// until fn returns false, ctx ends, or QEMU exits (after the last lines).
func (m *Machine) FollowConsole(ctx context.Context, fn func(line string) bool) {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var strip termStripper
	var pending []byte
	buf := make([]byte, 64*1024)
	tick := time.NewTicker(consolePoll)
	defer tick.Stop()
	for {
		exited := false
		select {
		case <-ctx.Done():
			return
		case <-m.done:
			exited = true
		case <-tick.C:
		}
		if f == nil {
			var err error
			if f, err = os.Open(m.console); err != nil {
				if exited {
					return
				}
				continue
			}
		}
		for {
			n, _ := f.Read(buf)
			if n == 0 {
				break
			}
			pending = strip.strip(pending, buf[:n])
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				if !fn(string(pending[:i])) {
					return
				}
				pending = append(pending[:0], pending[i+1:]...)
			}
		}
		if exited {
			if len(pending) > 0 {
				fn(string(pending))
			}
			return
		}
	}
}
