package progress

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Emit(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func TestStep(t *testing.T) {
	rec := &recorder{}
	s := Begin(rec, "bake", 10, "baking")
	s.Advance(5, 10)
	s.Note("installing htop")
	s.Warn("slow mirror")
	s.End("ok")
	kinds := []Kind{}
	for _, e := range rec.events {
		if e.Step != "bake" {
			t.Errorf("event for step %q", e.Step)
		}
		kinds = append(kinds, e.Kind)
	}
	if got := fmtKinds(kinds); got != "start,advance,note,warn,done" {
		t.Errorf("kinds = %s", got)
	}
	if rec.events[4].Took <= 0 {
		t.Error("Done without duration")
	}
}

func fmtKinds(k []Kind) string {
	s := make([]string, len(k))
	for i, x := range k {
		s[i] = string(x)
	}
	return strings.Join(s, ",")
}

func TestReaderCountsBytes(t *testing.T) {
	rec := &recorder{}
	data := bytes.Repeat([]byte("x"), 1<<20)
	r := NewReader(bytes.NewReader(data), Begin(rec, "copy", int64(len(data)), ""), int64(len(data)))
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != int64(len(data)) {
		t.Fatal(n, err)
	}
	last := rec.events[len(rec.events)-1]
	if last.Kind != Advance || last.Done != int64(len(data)) || last.Total != int64(len(data)) {
		t.Errorf("last event %+v", last)
	}
}

func TestDiscardAndOr(t *testing.T) {
	if Or(nil) != Discard {
		t.Error("Or(nil) is not Discard")
	}
	Begin(nil, "x", 0, "").End("") // must not panic
}
