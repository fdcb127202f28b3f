package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
)

func TestLineRenderer(t *testing.T) {
	var b bytes.Buffer
	r := &lineRenderer{w: &b, last: map[string]int64{}}
	r.Emit(progress.Event{Step: "convert", Kind: progress.Start, Msg: "qcow2"})
	for i := int64(0); i <= 100; i += 5 {
		r.Emit(progress.Event{Step: "convert", Kind: progress.Advance, Done: i, Total: 100})
	}
	r.Emit(progress.Event{Step: "convert", Kind: progress.Warn, Msg: "slow disk"})
	r.Emit(progress.Event{Step: "convert", Kind: progress.Done, Took: 1500 * time.Millisecond})
	out := b.String()
	// Plain lines, and advances only every 10%: a CI log stays readable.
	if n := strings.Count(out, "%\n"); n != 10 {
		t.Errorf("%d progress lines, want 10:\n%s", n, out)
	}
	for _, want := range []string{"[convert] qcow2\n", "[convert] 50%\n", "[convert] 100%\n", "[convert] warning: slow disk\n", "[convert] done in 1.5s\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\x1b") {
		t.Error("terminal control in plain output")
	}
}

func TestTTYRenderer(t *testing.T) {
	var b bytes.Buffer
	r := &ttyRenderer{w: &b}
	r.Emit(progress.Event{Step: "convert", Kind: progress.Start, Msg: "qcow2"})
	r.Emit(progress.Event{Step: "convert", Kind: progress.Advance, Done: 50, Total: 100})
	r.Emit(progress.Event{Step: "convert", Kind: progress.Advance, Done: 100, Total: 100})
	r.Emit(progress.Event{Step: "convert", Kind: progress.Done, Took: time.Second})
	out := b.String()
	if !strings.Contains(out, "[===============               ]  50%") || !strings.Contains(out, "\r\x1b[K") || !strings.Contains(out, "done in 1s") {
		t.Errorf("tty output: %q", out)
	}
}
