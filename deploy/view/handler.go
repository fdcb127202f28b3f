package view

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy"
)

// Options tune the view; the zero value is the defaults.
type Options struct {
	// Interval is how often a live page's stream asks the Source for a
	// new snapshot (default 1 s).
	Interval time.Duration
	// Timeout bounds each Source call and each drawing (default 10 s).
	Timeout time.Duration
	// MaxEvents is how many of the newest events are served (default 200).
	MaxEvents int
	// MaxStreams is how many live streams (/api/events) may be open at
	// once (default 16); pages beyond it poll. Negative: none, every page
	// polls /api/snapshot.
	MaxStreams int
	// AllowedHosts are the host names (a request's Host header, without
	// its port) the view answers besides IP addresses and localhost. Any
	// other is refused, so that a web page elsewhere cannot read the view
	// through DNS rebinding.
	AllowedHosts []string
}

// Defaults of Options.
const (
	DefaultInterval   = time.Second
	DefaultTimeout    = 10 * time.Second
	DefaultMaxEvents  = 200
	DefaultMaxStreams = 16
)

// Limits of the drawing: a fleet whose DOT is larger is not drawn (the
// tables still show it), nor is an SVG larger than maxSVG kept.
const (
	maxDOT = 1 << 20
	maxSVG = 8 << 20
)

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	return o
}

// The page's Content-Security-Policy: everything from the view itself,
// nothing inline, nothing from anywhere else.
const pagePolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// The drawing's, for when it is opened on its own: Graphviz's SVG needs
// no script and no resource.
const drawingPolicy = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

//go:embed assets
var assets embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func loadAsset(name string) asset {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	return asset{body: b, contentType: types[path.Ext(name)], etag: etag(b)}
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

type handler struct {
	src  Source
	opts Options
	// streams holds a token per open live stream.
	streams chan struct{}
	// drawing is held by the one drawing at a time, and guards last.
	drawing chan struct{}
	last    struct {
		key string
		svg []byte
	}
}

// Handler serves the live view of src:
//
//	GET /                 the page (HTML, with view.js, view.css and favicon.svg)
//	GET /api/snapshot     the snapshot as JSON
//	GET /api/events       server-sent events: a "snapshot" event at once and
//	                      at every change, "source-error" when the Source fails
//	GET /api/graph.svg    the topology drawn by Graphviz
//
// It has no other endpoint and changes nothing: other methods are refused.
// Live streams end when their request's context does: give the server a
// BaseContext that ends at shutdown, or Close it.
func Handler(src Source, opts Options) http.Handler {
	h := &handler{src: src, opts: opts.withDefaults(), drawing: make(chan struct{}, 1)}
	h.streams = make(chan struct{}, max(h.opts.MaxStreams, 0))
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", serveAsset(loadAsset("index.html")))
	mux.Handle("GET /view.js", serveAsset(loadAsset("view.js")))
	mux.Handle("GET /view.css", serveAsset(loadAsset("view.css")))
	mux.Handle("GET /favicon.svg", serveAsset(loadAsset("favicon.svg")))
	mux.HandleFunc("GET /api/snapshot", h.snapshot)
	mux.HandleFunc("GET /api/events", h.events)
	mux.HandleFunc("GET /api/graph.svg", h.graph)
	return h.guard(mux)
}

// guard refuses hosts the view does not answer to, and sets the security
// headers of every answer.
func (h *handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", pagePolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !h.hostAllowed(r.Host) {
			http.Error(w, fmt.Sprintf("host %q is not allowed: the live view answers to IP addresses, localhost and the host names it is given", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) hostAllowed(hostport string) bool {
	host := hostport
	if name, _, err := net.SplitHostPort(hostport); err == nil {
		host = name
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil || strings.EqualFold(host, "localhost") {
		return true
	}
	for _, a := range h.opts.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(a, "."), host) {
			return true
		}
	}
	return false
}

func serveAsset(a asset) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// get asks the Source for a snapshot, bounded by the timeout, and
// normalizes it.
func (h *handler) get(ctx context.Context) (Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	s, err := h.src.Snapshot(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	return normalize(s, h.opts.MaxEvents), nil
}

// problem is the JSON of a failure.
type problem struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error": "the snapshot cannot be written as JSON"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) {
	s, err := h.get(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, problem{Error: "the controller gave no snapshot: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (h *handler) graph(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, format string, args ...any) {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, fmt.Sprintf(format, args...), code)
	}
	s, err := h.get(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "No drawing: the controller gave no snapshot: %v.", err)
		return
	}
	svg, tag, err := h.draw(r.Context(), s.Topology())
	switch {
	case errors.Is(err, deploy.ErrNoDot):
		fail(http.StatusServiceUnavailable, "No drawing: Graphviz's dot is not installed where kiln runs (apt-get install graphviz).")
		return
	case errors.Is(err, context.DeadlineExceeded):
		fail(http.StatusServiceUnavailable, "No drawing: Graphviz took longer than %s.", h.opts.Timeout)
		return
	case err != nil:
		fail(http.StatusInternalServerError, "No drawing: %v.", err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Content-Security-Policy", drawingPolicy)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", tag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(svg))
}

// draw renders the topology with Graphviz, one drawing at a time, and
// keeps the last: the same topology is drawn once however many pages ask.
func (h *handler) draw(ctx context.Context, t deploy.Topology) (svg []byte, tag string, err error) {
	dot := t.DOT()
	if len(dot) > maxDOT {
		return nil, "", fmt.Errorf("the fleet is too large to draw (%d bytes of DOT, at most %d)", len(dot), maxDOT)
	}
	tag = etag([]byte(dot))
	select {
	case h.drawing <- struct{}{}:
		defer func() { <-h.drawing }()
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	if h.last.key == tag {
		return h.last.svg, tag, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	if svg, err = t.SVG(ctx); err != nil {
		return nil, "", err
	}
	if len(svg) > maxSVG {
		return nil, "", fmt.Errorf("the SVG Graphviz drew is %d bytes, more than the %d kept", len(svg), maxSVG)
	}
	h.last.key, h.last.svg = tag, svg
	return svg, tag, nil
}
