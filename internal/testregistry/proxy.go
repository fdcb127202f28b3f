package testregistry

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultKind is what a Fault does to a request.
type FaultKind int

const (
	// Status answers Fault.Code without forwarding the request.
	Status FaultKind = iota + 1
	// DropAfter forwards the request, sends the response headers and
	// Fault.Bytes bytes of the body, then resets the connection (RST): a
	// network cut in mid-download. The client reads
	// syscall.ECONNRESET.
	DropAfter
	// Truncate forwards the request, sends the response headers with the
	// full Content-Length but only Fault.Bytes bytes of the body, then
	// closes the connection in order (FIN): the client reads
	// io.ErrUnexpectedEOF.
	Truncate
	// DropRequest resets the connection before forwarding: the registry
	// never sees the request, the client sees a connection reset.
	DropRequest
)

var kindNames = map[FaultKind]string{
	Status: "Status", DropAfter: "DropAfter", Truncate: "Truncate", DropRequest: "DropRequest",
}

func (k FaultKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// cutsBody says the fault acts on the registry's response, not instead of it.
func (k FaultKind) cutsBody() bool { return k == DropAfter || k == Truncate }

// Fault is one fault a FaultProxy injects into matching requests.
type Fault struct {
	Method       string // "" = any
	PathContains string // matched against the URL path, e.g. "/blobs/"
	Kind         FaultKind
	Code         int   // Status: the status code to answer
	Bytes        int64 // DropAfter, Truncate: body bytes sent before the cut
	// Times is how many matching requests the fault hits; later ones
	// pass through, so a retry or a resume can succeed.
	Times int
	// MinSize limits DropAfter and Truncate to responses whose
	// Content-Length is at least MinSize: a "mid-blob" fault then hits
	// the big disk blob and not the small config blob before it.
	MinSize int64
}

func (f Fault) String() string {
	s := f.Kind.String()
	switch f.Kind {
	case Status:
		s += fmt.Sprintf(" %d", f.Code)
	case DropAfter, Truncate:
		s += fmt.Sprintf(" after %d bytes", f.Bytes)
	}
	m := f.Method
	if m == "" {
		m = "*"
	}
	s += fmt.Sprintf(" on %s *%s* x%d", m, f.PathContains, f.Times)
	if f.MinSize > 0 {
		s += fmt.Sprintf(" (Content-Length >= %d)", f.MinSize)
	}
	return s
}

// check reports a fault that could never be injected as asked.
func (f Fault) check() error {
	if _, ok := kindNames[f.Kind]; !ok {
		return fmt.Errorf("unknown kind %v", f.Kind)
	}
	if f.Times < 1 {
		return fmt.Errorf("Times %d: a fault must hit at least once", f.Times)
	}
	if f.Kind == Status && (f.Code < 100 || f.Code > 599) {
		return fmt.Errorf("Status fault with Code %d (want an HTTP status)", f.Code)
	}
	if f.Kind != Status && f.Code != 0 {
		return fmt.Errorf("%v fault with a Code: only Status answers one", f.Kind)
	}
	if f.Kind.cutsBody() && f.Bytes < 0 {
		return fmt.Errorf("%v fault with Bytes %d", f.Kind, f.Bytes)
	}
	if !f.Kind.cutsBody() && (f.Bytes != 0 || f.MinSize != 0) {
		return fmt.Errorf("%v fault with Bytes or MinSize: it never sees a response", f.Kind)
	}
	return nil
}

// FaultProxy sits between a client and a Registry and injects faults into
// matching requests, each fault a limited number of times, so retries and
// resumes can succeed. Everything else it forwards as it comes, streaming
// bodies both ways (chunked ones too) without holding them in memory.
// Location headers that point at the registry are rewritten to point at
// the proxy, so uploads keep going through it.
//
// Go's http.Transport replays a body-less request by itself when a reused
// connection is reset before any byte of the answer; a test that wants
// the client to see a DropRequest should disable keep-alives, and can
// always count what was injected with Hits.
type FaultProxy struct {
	Host string // "127.0.0.1:PORT"

	t      testing.TB
	target string // the registry's host:port
	srv    *http.Server
	tr     *http.Transport

	mu     sync.Mutex
	faults []*armedFault
	hits   map[Fault]int
	served map[string]int64 // GET path -> body bytes sent to the client
	events []string         // injections and proxy errors, logged if the test fails
}

type armedFault struct {
	Fault
	left int
}

// NewFaultProxy starts a proxy on 127.0.0.1 in front of target; it is
// closed in t.Cleanup. It forwards to target's host:port whether target
// runs or not (a stopped registry gives 502 Bad Gateway).
func NewFaultProxy(t testing.TB, target *Registry) *FaultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testregistry: fault proxy: %v", err)
	}
	p := &FaultProxy{
		Host:   l.Addr().String(),
		t:      t,
		target: target.Host,
		// No compression: the proxy must pass bodies and their
		// Content-Length through untouched. No proxy from the
		// environment either.
		tr:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
		hits:   map[Fault]int{},
		served: map[string]int64{},
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(eventWriter{p}, "http server: ", 0),
	}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() {
		_ = p.srv.Close()
		p.tr.CloseIdleConnections()
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("testregistry: fault proxy %s -> %s:\n%s", p.Host, p.target, strings.Join(p.events, "\n"))
		}
	})
	return p
}

// URL is the proxy's base URL, "http://127.0.0.1:PORT".
func (p *FaultProxy) URL() string { return "http://" + p.Host }

// Add arms f. Faults are tried in the order added; a request gets at most
// one. A fault that could never be injected as written fails the test.
func (p *FaultProxy) Add(f Fault) {
	p.t.Helper()
	if err := f.check(); err != nil {
		p.t.Fatalf("testregistry: FaultProxy.Add(%v): %v", f, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &armedFault{Fault: f, left: f.Times})
	if _, ok := p.hits[f]; !ok {
		p.hits[f] = 0
	}
}

// Hits says how often each fault added was injected, keyed by the Fault
// as given to Add (a fault added twice counts once, with both hits).
func (p *FaultProxy) Hits() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[Fault]int, len(p.hits))
	for f, n := range p.hits {
		m[f] = n
	}
	return m
}

// BytesServed is the number of response body bytes the proxy sent to
// clients for GET requests whose path contains pathContains, cut bodies
// included: a resumed download of a blob adds up to the blob's size plus
// what was sent twice.
func (p *FaultProxy) BytesServed(pathContains string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for path, b := range p.served {
		if strings.Contains(path, pathContains) {
			n += b
		}
	}
	return n
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if f, ok := p.take(req, false, -1); ok {
		switch f.Kind {
		case Status:
			// A registry-style error body, for clients that read one.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Code)
			fmt.Fprintf(w, `{"errors":[{"code":"UNKNOWN","message":"testregistry: injected status %d"}]}`+"\n", f.Code)
		case DropRequest:
			p.cut(w, false, true)
		}
		return
	}

	out, err := http.NewRequestWithContext(req.Context(), req.Method, "http://"+p.target+req.URL.RequestURI(), nil)
	if err != nil {
		p.event("%s %s: %v", req.Method, req.URL, err)
		http.Error(w, "testregistry proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	out.Header = forwardHeader(req.Header)
	if req.ContentLength != 0 { // -1: chunked, streamed on as chunked
		out.Body, out.ContentLength = req.Body, req.ContentLength
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		p.event("%s %s: upstream: %v", req.Method, req.URL, err)
		http.Error(w, "testregistry proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	h := w.Header()
	for k, vs := range forwardHeader(resp.Header) {
		h[k] = vs
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		h.Set("Location", p.rewriteLocation(loc))
	}
	if resp.ContentLength >= 0 && req.Method != http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	f, fault := p.take(req, true, resp.ContentLength)
	limit := int64(-1)
	if fault {
		limit = f.Bytes
	}
	w.WriteHeader(resp.StatusCode)
	if err := p.copyBody(w, resp.Body, limit, req); err != nil {
		return // the client went away
	}
	if fault {
		p.cut(w, true, f.Kind == DropAfter)
	}
}

// take finds the first armed fault for req, of the request side (before
// forwarding) or the body side (once the response's size is known), and
// counts it as injected.
func (p *FaultProxy) take(req *http.Request, body bool, size int64) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.faults {
		switch {
		case a.left == 0, a.Kind.cutsBody() != body:
		case a.Method != "" && !strings.EqualFold(a.Method, req.Method):
		case !strings.Contains(req.URL.Path, a.PathContains):
		// A HEAD answer has no body to cut.
		case body && (req.Method == http.MethodHead || a.MinSize > 0 && size < a.MinSize):
		default:
			a.left--
			p.hits[a.Fault]++
			p.events = append(p.events, fmt.Sprintf("injected %v: %s %s", a.Fault, req.Method, req.URL))
			return a.Fault, true
		}
	}
	return Fault{}, false
}

// copyBody streams body to w, at most limit bytes unless limit is -1,
// counting what GET requests were served.
func (p *FaultProxy) copyBody(w http.ResponseWriter, body io.Reader, limit int64, req *http.Request) error {
	buf := make([]byte, 32<<10)
	var sent int64
	for limit < 0 || sent < limit {
		chunk := buf
		if limit >= 0 && limit-sent < int64(len(chunk)) {
			chunk = chunk[:limit-sent]
		}
		n, rerr := body.Read(chunk)
		if n > 0 {
			// Counted before they are written, and what was not written
			// taken back after: a client that has read the bytes must find
			// them counted, even if it asks before this handler resumes.
			p.countServed(req, int64(n))
			m, werr := w.Write(chunk[:n])
			sent += int64(m)
			p.countServed(req, int64(m-n))
			if werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			// The registry broke off: break the client's connection
			// too, or a chunked body would end as if complete.
			p.event("%s %s: upstream body: %v", req.Method, req.URL, rerr)
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}

// countServed adds n body bytes sent for a GET request.
func (p *FaultProxy) countServed(req *http.Request, n int64) {
	if req.Method != http.MethodGet || n == 0 {
		return
	}
	p.mu.Lock()
	p.served[req.URL.Path] += n
	p.mu.Unlock()
}

// cut takes the connection from the server and closes it: after sending
// what was written (flush), with a reset (RST) or in order (FIN).
func (p *FaultProxy) cut(w http.ResponseWriter, flush, reset bool) {
	rc := http.NewResponseController(w)
	if flush {
		if err := rc.Flush(); err != nil {
			return // the client went away
		}
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		p.event("hijack: %v", err)
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		// The bytes written must reach the client before the reset,
		// which drops whatever is still queued.
		waitSent(conn, time.Now().Add(10*time.Second))
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// rewriteLocation points an absolute Location at the registry to the proxy.
func (p *FaultProxy) rewriteLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Host != p.target {
		return loc // relative, or elsewhere
	}
	u.Host = p.Host
	return u.String()
}

func (p *FaultProxy) event(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, fmt.Sprintf(format, args...))
}

// eventWriter records the proxy's http.Server log lines as events.
type eventWriter struct{ p *FaultProxy }

func (e eventWriter) Write(b []byte) (int, error) {
	e.p.event("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// hopHeaders belong to one connection (RFC 9110, 7.6.1) and are not
// forwarded. Expect is answered by the proxy's own server already.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
}

// forwardHeader is a copy of h without hop-by-hop headers.
func forwardHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, c := range h.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range hopHeaders {
		out.Del(k)
	}
	return out
}
