package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
	"golang.org/x/term"
)

// newRenderer picks how progress is shown: JSON lines with --output json
// (on stdout, with the result as the last line), a live display on a
// terminal, plain lines otherwise (CI logs).
func newRenderer(w io.Writer) progress.Sink {
	if jsonOutput() {
		return &jsonRenderer{enc: json.NewEncoder(os.Stdout)}
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &ttyRenderer{w: w}
	}
	return &lineRenderer{w: w, last: map[string]int64{}}
}

type jsonRenderer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (r *jsonRenderer) Emit(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enc.Encode(struct {
		Type string `json:"type"`
		progress.Event
	}{"progress", e})
}

// lineRenderer writes one line per event, and advances only every 10%.
type lineRenderer struct {
	mu   sync.Mutex
	w    io.Writer
	last map[string]int64
}

func (r *lineRenderer) Emit(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case progress.Start:
		fmt.Fprintf(r.w, "[%s] %s\n", e.Step, e.Msg)
	case progress.Advance:
		if e.Total <= 0 {
			return
		}
		pct := e.Done * 100 / e.Total
		if pct/10 > r.last[e.Step]/10 || (pct == 100 && r.last[e.Step] != 100) {
			r.last[e.Step] = pct
			fmt.Fprintf(r.w, "[%s] %d%%\n", e.Step, pct)
		}
	case progress.Note:
		fmt.Fprintf(r.w, "[%s]   %s\n", e.Step, e.Msg)
	case progress.Warn:
		fmt.Fprintf(r.w, "[%s] warning: %s\n", e.Step, e.Msg)
	case progress.Done:
		fmt.Fprintf(r.w, "[%s] done in %s%s\n", e.Step, e.Took.Round(100*time.Millisecond), suffix(e.Msg))
	}
}

// ttyRenderer keeps one live status line per running step at the bottom.
type ttyRenderer struct {
	mu     sync.Mutex
	w      io.Writer
	status string
}

func (r *ttyRenderer) Emit(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clear()
	switch e.Kind {
	case progress.Start:
		fmt.Fprintf(r.w, "\033[1m==> %s\033[0m %s\n", e.Step, e.Msg)
		r.status = ""
	case progress.Advance:
		if e.Total > 0 {
			r.status = bar(e.Step, e.Done, e.Total)
		}
	case progress.Note:
		r.status = fmt.Sprintf("    %s", truncateTo(e.Msg, 100))
	case progress.Warn:
		fmt.Fprintf(r.w, "    \033[33mwarning:\033[0m %s\n", e.Msg)
	case progress.Done:
		fmt.Fprintf(r.w, "    done in %s%s\n", e.Took.Round(100*time.Millisecond), suffix(e.Msg))
		r.status = ""
	}
	if r.status != "" {
		fmt.Fprint(r.w, r.status)
	}
}

func (r *ttyRenderer) clear() {
	if r.status != "" {
		fmt.Fprint(r.w, "\r\033[K")
	}
}

func bar(step string, done, total int64) string {
	const width = 30
	n := int(done * width / total)
	if n > width {
		n = width
	}
	return fmt.Sprintf("    [%s%s] %3d%%", strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total)
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func truncateTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
