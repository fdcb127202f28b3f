package uisink

import (
	"bytes"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/kiln-project/kiln/internal/progress"
)

func TestSink(t *testing.T) {
	var out, errs bytes.Buffer
	s := New(&packersdk.BasicUi{Writer: &out, ErrorWriter: &errs})
	s.Emit(progress.Event{Step: "convert", Kind: progress.Start, Msg: "qcow2, zstd compression"})
	for _, d := range []int64{0, 5, 9, 10, 15, 55, 100, 100} {
		s.Emit(progress.Event{Step: "convert", Kind: progress.Advance, Done: d, Total: 100})
	}
	s.Emit(progress.Event{Step: "convert", Kind: progress.Advance, Done: 7}) // no total: not shown
	s.Emit(progress.Event{Step: "convert", Kind: progress.Note, Msg: "a note"})
	s.Emit(progress.Event{Step: "lint", Kind: progress.Warn, Msg: "look at this"})
	s.Emit(progress.Event{Step: "convert", Kind: progress.Done, Took: 1234 * time.Millisecond, Msg: "127 MiB"})
	want := []string{
		"convert: qcow2, zstd compression",
		"convert: 0%", "convert: 10%", "convert: 55%", "convert: 100%",
		"convert: a note",
		"warning: lint: look at this",
		"convert: done in 1.2s (127 MiB)",
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
