package view

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Timing of a live stream.
const (
	// keepAlive is how long a stream may stay silent: a comment line then
	// shows the client (and any proxy) the connection lives, and shows the
	// view a client that left.
	keepAlive = 15 * time.Second
	// writeTimeout bounds each write, so a client that stopped reading
	// does not hold its stream forever.
	writeTimeout = 10 * time.Second
	// retryMillis is how soon a browser reconnects a stream that broke.
	retryMillis = 2000
)

// events streams the snapshot as server-sent events: one at once, then
// one each time a poll of the Source finds it changed (At aside). A failing
// Source is told once per distinct error, and the next good snapshot is
// sent whether it changed or not.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "no live stream free: poll /api/snapshot instead", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // tells a proxy in front (nginx) not to buffer
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	lastWrite := time.Now()
	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // not every ResponseWriter can
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		lastWrite = time.Now()
		return rc.Flush() == nil
	}
	if !write("retry: %d\n\n", retryMillis) {
		return
	}
	ctx := r.Context()
	tick := time.NewTicker(h.opts.Interval)
	defer tick.Stop()
	var sent []byte // the content of the last snapshot sent
	lastErr := ""
	for {
		s, err := h.get(ctx)
		if ctx.Err() != nil {
			return
		}
		var data []byte
		msg := ""
		if err != nil {
			msg = "the controller gave no snapshot: " + err.Error()
		} else if data, err = json.Marshal(s); err != nil {
			msg = "the snapshot cannot be written as JSON: " + err.Error()
		}
		switch {
		case msg != "" && msg != lastErr:
			data, _ = json.Marshal(problem{Error: msg})
			if !write("event: source-error\ndata: %s\n\n", data) {
				return
			}
			lastErr, sent = msg, nil
		case msg == "":
			lastErr = ""
			if key := content(s); !bytes.Equal(key, sent) {
				if !write("event: snapshot\ndata: %s\n\n", data) {
					return
				}
				sent = key
			}
		}
		if time.Since(lastWrite) >= keepAlive && !write(": keep-alive\n\n") {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// content is what makes a snapshot differ from another: all of it but At.
func content(s Snapshot) []byte {
	s.At = time.Time{}
	b, _ := json.Marshal(s)
	return b
}
