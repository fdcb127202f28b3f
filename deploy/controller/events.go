package controller

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kiln-project/kiln/deploy/view"
)

// EventsFile is the event log in a state directory: one JSON event per line,
// appended and synced, so `kiln deploy events` reads what a controller did
// even after it was killed.
const EventsFile = "events.jsonl"

// maxEventsSize is where the log is cut: the newest half is kept.
const maxEventsSize = 4 << 20

// eventLog appends events to a state directory's log.
type eventLog struct {
	mu   sync.Mutex
	path string
}

func (l *eventLog) append(e view.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if st, err := os.Stat(l.path); err == nil && st.Size()+int64(len(line)) > maxEventsSize {
		if err := l.cut(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cut keeps the newest half of the log, whole lines, atomically.
func (l *eventLog) cut() error {
	data, err := os.ReadFile(l.path)
	if err != nil {
		return err
	}
	data = data[len(data)/2:]
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.path)
}

// ReadEvents reads the event log of a state directory, oldest first: the
// events of set (all sets when ""), the newest limit of them (all when 0).
// A line cut short by a crash is skipped.
func ReadEvents(stateDir, set string, limit int) ([]view.Event, error) {
	f, err := os.Open(filepath.Join(stateDir, EventsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []view.Event
	r := bufio.NewReader(io.LimitReader(f, 2*maxEventsSize))
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var e view.Event
			if json.Unmarshal(line, &e) == nil && (set == "" || e.Set == set) {
				out = append(out, e)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}
