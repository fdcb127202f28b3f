// Package progress carries progress events from long-running library code
// (bake, convert, download, push) to whoever renders them: the CLI draws bars
// or lines, Packer shows UI messages. Libraries only emit; they never print.
package progress

import (
	"io"
	"sync"
	"time"
)

// Kind says what an event reports.
type Kind string

const (
	// Start opens a step; Total is its size when known.
	Start Kind = "start"
	// Advance reports Done of Total units (bytes, percent, packages).
	Advance Kind = "advance"
	// Done closes a step.
	Done Kind = "done"
	// Note is a line of information within a step.
	Note Kind = "note"
	// Warn is something that worked but deserves a look.
	Warn Kind = "warn"
)

// Event is one progress report.
type Event struct {
	Step  string        `json:"step"`
	Kind  Kind          `json:"kind"`
	Done  int64         `json:"done,omitempty"`
	Total int64         `json:"total,omitempty"`
	Msg   string        `json:"msg,omitempty"`
	Time  time.Time     `json:"time"`
	Took  time.Duration `json:"took,omitempty"` // on Done: how long the step ran
}

// Sink receives events. Emit must not block for long and must be safe for
// concurrent use.
type Sink interface {
	Emit(Event)
}

// Discard drops every event: the default for libraries.
var Discard Sink = discard{}

type discard struct{}

func (discard) Emit(Event) {}

// Or returns s, or Discard when s is nil.
func Or(s Sink) Sink {
	if s == nil {
		return Discard
	}
	return s
}

// Func adapts a function to a Sink.
type Func func(Event)

// Emit calls f.
func (f Func) Emit(e Event) { f(e) }

// Step is a helper for emitting the events of one named step.
type Step struct {
	sink  Sink
	name  string
	start time.Time
}

// Begin emits Start for a step and returns a helper for its other events.
func Begin(s Sink, name string, total int64, msg string) *Step {
	st := &Step{sink: Or(s), name: name, start: time.Now()}
	st.sink.Emit(Event{Step: name, Kind: Start, Total: total, Msg: msg, Time: st.start})
	return st
}

// Advance reports done of total.
func (s *Step) Advance(done, total int64) {
	s.sink.Emit(Event{Step: s.name, Kind: Advance, Done: done, Total: total, Time: time.Now()})
}

// Note reports a line of information.
func (s *Step) Note(msg string) {
	s.sink.Emit(Event{Step: s.name, Kind: Note, Msg: msg, Time: time.Now()})
}

// Warn reports a warning.
func (s *Step) Warn(msg string) {
	s.sink.Emit(Event{Step: s.name, Kind: Warn, Msg: msg, Time: time.Now()})
}

// End emits Done with the step's duration.
func (s *Step) End(msg string) {
	now := time.Now()
	s.sink.Emit(Event{Step: s.name, Kind: Done, Msg: msg, Time: now, Took: now.Sub(s.start)})
}

// Reader counts bytes read through it as Advance events of one step,
// at most every 100 ms.
type Reader struct {
	r     io.Reader
	step  *Step
	total int64

	mu   sync.Mutex
	done int64
	last time.Time
}

// NewReader wraps r; total may be 0 when unknown.
func NewReader(r io.Reader, step *Step, total int64) *Reader {
	return &Reader{r: r, step: step, total: total}
}

// Read reads and reports.
func (p *Reader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	p.done += int64(n)
	report := time.Since(p.last) > 100*time.Millisecond || err != nil
	if report {
		p.last = time.Now()
	}
	done := p.done
	p.mu.Unlock()
	if report {
		p.step.Advance(done, p.total)
	}
	return n, err
}
