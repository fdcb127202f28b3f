package view

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/internal/testutil"
)

// request is a request to the view on 127.0.0.1 (httptest's example.com
// is a host name the view refuses).
func request(method, path string, body io.Reader) *http.Request {
	return httptest.NewRequest(method, "http://127.0.0.1:8080"+path, body)
}

func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := request(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestSnapshotJSON: /api/snapshot is the Source's snapshot with the schema
// version, in camelCase, with lists never null.
func TestSnapshotJSON(t *testing.T) {
	h := Handler(newFakeSource(sample()), Options{})
	w := get(t, h, "/api/snapshot")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json; charset=utf-8" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
	var got Snapshot
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.SchemaVersion = SchemaVersion
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}

	// The shape, as a client in another language reads it.
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		var ks []string
		for k := range v.(map[string]any) {
			ks = append(ks, k)
		}
		return ks
	}
	set := doc["sets"].([]any)[0].(map[string]any)
	inst := set["instances"].([]any)[2].(map[string]any)
	for what, want := range map[string]struct {
		obj  any
		keys []string
	}{
		"snapshot": {doc, []string{"schemaVersion", "fleet", "at", "sets", "events"}},
		"set":      {set, []string{"name", "kind", "capacity", "faultDomains", "updateDomains", "image", "loadBalancer", "upgrade", "autoscale", "instances"}},
		"image":    {set["image"], []string{"ref", "digest"}},
		"upgrade":  {set["upgrade"], []string{"from", "to", "status", "batch", "batches"}},
		"instance": {inst, []string{"name", "host", "state", "health", "healthReason", "faultDomain", "updateDomain", "digest", "forwards", "protectFromScaleIn", "loadBalancer"}},
		"forward":  {inst["forwards"].([]any)[0], []string{"guestPort", "hostPort"}},
		"event":    {doc["events"].([]any)[4], []string{"at", "set", "instance", "kind", "message"}},
	} {
		got := keys(want.obj)
		if !sameSet(got, want.keys) {
			t.Errorf("%s has keys %v, want %v", what, got, want.keys)
		}
	}
	if doc["schemaVersion"] != float64(1) || doc["at"] != "2026-03-14T09:26:53Z" || inst["state"] != "running" || inst["health"] != "unhealthy" {
		t.Errorf("values: schemaVersion %v, at %v, state %v, health %v", doc["schemaVersion"], doc["at"], inst["state"], inst["health"])
	}

	// An empty fleet has empty lists, not null ones.
	w = get(t, Handler(newFakeSource(Snapshot{Fleet: "empty.yaml", Sets: []SetView{{Name: "web"}}}), Options{}), "/api/snapshot")
	for _, want := range []string{`"events": []`, `"instances": []`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("an empty fleet's JSON lacks %s:\n%s", want, w.Body)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestSnapshotEvents: events come sorted by time, the newest MaxEvents of
// them, and the Source's snapshot is left as it was.
func TestSnapshotEvents(t *testing.T) {
	s := sample()
	s.Events[0], s.Events[4] = s.Events[4], s.Events[0]
	before := deepCopy(s)
	got := normalize(s, 3)
	if !reflect.DeepEqual(s, before) {
		t.Error("normalize changed its argument")
	}
	var msgs []string
	for _, e := range got.Events {
		msgs = append(msgs, e.Message)
	}
	want := []string{sample().Events[2].Message, sample().Events[3].Message, sample().Events[4].Message}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("events %q, want %q", msgs, want)
	}
}

func TestSnapshotSourceError(t *testing.T) {
	src := newFakeSource(sample())
	src.fail(errors.New("reconciling: libvirt is gone"))
	w := get(t, Handler(src, Options{}), "/api/snapshot")
	var p problem
	if w.Code != http.StatusServiceUnavailable || json.Unmarshal(w.Body.Bytes(), &p) != nil || !strings.Contains(p.Error, "libvirt is gone") {
		t.Errorf("status %d, body %s", w.Code, w.Body)
	}
}

// TestSnapshotTimeout: a Source that does not answer is given up after
// Options.Timeout.
func TestSnapshotTimeout(t *testing.T) {
	stuck := SourceFunc(func(ctx context.Context) (Snapshot, error) {
		<-ctx.Done()
		return Snapshot{}, ctx.Err()
	})
	start := time.Now()
	w := get(t, Handler(stuck, Options{Timeout: 50 * time.Millisecond}), "/api/snapshot")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "deadline exceeded") {
		t.Errorf("status %d, body %s", w.Code, w.Body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestXSS: markup in the data stays data. The JSON escapes < and >, the
// page is static, and view.js writes text only (the browser test sees the
// hostile reason rendered as text).
func TestXSS(t *testing.T) {
	src := newFakeSource(sample())
	h := Handler(src, Options{})
	body := get(t, h, "/api/snapshot").Body.String()
	if strings.Contains(body, "<script") || strings.Contains(body, "<img") || !strings.Contains(body, `\u003cscript\u003e`) {
		t.Errorf("the JSON carries markup unescaped:\n%s", body)
	}
	page := get(t, h, "/").Body.String()
	if strings.Contains(page, "pwned") || strings.Contains(page, "web-2") {
		t.Error("the page has data in it: it should be static")
	}
	js, err := assets.ReadFile("assets/view.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "srcdoc", "javascript:"} {
		if bytes.Contains(js, []byte(sink)) {
			t.Errorf("view.js uses %s: write data with textContent and text nodes", sink)
		}
	}
}

// TestAssets: the page is one HTML file, one script, one style sheet and
// an icon, all the view's own: no URL outside it, no inline script or
// style (the policy forbids them), answered with an ETag.
func TestAssets(t *testing.T) {
	h := Handler(newFakeSource(sample()), Options{})
	xmlns := regexp.MustCompile(`\sxmlns="[^"]*"`)
	external := regexp.MustCompile(`(?i)\b(https?|wss?|ftp|data|blob):\S|//[a-z0-9-]+\.[a-z]|@import|url\(`)
	for path, ctype := range map[string]string{
		"/": "text/html; charset=utf-8", "/view.js": "text/javascript; charset=utf-8",
		"/view.css": "text/css; charset=utf-8", "/favicon.svg": "image/svg+xml",
	} {
		w := get(t, h, path)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != ctype {
			t.Errorf("%s: status %d, type %q", path, w.Code, w.Header().Get("Content-Type"))
			continue
		}
		// An XML namespace names, it is never fetched.
		body := xmlns.ReplaceAllString(w.Body.String(), "")
		for _, m := range external.FindAllString(body, -1) {
			t.Errorf("%s refers to %q: the view must work offline", path, m)
		}
		if tag := w.Header().Get("ETag"); tag == "" || get(t, h, path, "If-None-Match", tag).Code != http.StatusNotModified {
			t.Errorf("%s: ETag %q does not give 304", path, tag)
		}
	}
	page := get(t, h, "/").Body.String()
	if n := strings.Count(page, "<script"); n != 1 || !strings.Contains(page, `<script src="view.js" defer></script>`) {
		t.Errorf("the page has %d scripts; want only view.js", n)
	}
	if strings.Contains(page, "<style") || strings.Contains(page, "style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Error("the page has inline style or handlers, which its policy refuses")
	}
	if w := get(t, h, "/index.html"); w.Code != http.StatusNotFound {
		t.Errorf("/index.html: %d, want 404 (the page is at /)", w.Code)
	}
}

// TestSecurityHeaders: every answer, errors included, carries the policy.
func TestSecurityHeaders(t *testing.T) {
	h := Handler(newFakeSource(sample()), Options{})
	for _, path := range []string{"/", "/view.js", "/api/snapshot", "/nothing", "/api/graph.svg?v=1"} {
		w := get(t, h, path)
		hd := w.Header()
		csp := hd.Get("Content-Security-Policy")
		if path == "/api/graph.svg?v=1" && w.Code == http.StatusOK {
			if csp != drawingPolicy {
				t.Errorf("%s: policy %q", path, csp)
			}
		} else if !strings.HasPrefix(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "object-src 'none'") {
			t.Errorf("%s: policy %q", path, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if hd.Get(k) != v {
				t.Errorf("%s: %s %q, want %q", path, k, hd.Get(k), v)
			}
		}
	}
}

// TestReadOnly: nothing but GET and HEAD is answered.
func TestReadOnly(t *testing.T) {
	h := Handler(newFakeSource(sample()), Options{})
	for _, path := range []string{"/", "/api/snapshot", "/api/events", "/api/graph.svg"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, request(m, path, strings.NewReader("{}")))
			if w.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, path, w.Code)
			}
		}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 10 * time.Second} // a stream answering HEAD would never end
	for _, path := range []string{"/", "/api/snapshot", "/api/events"} {
		resp, err := client.Head(srv.URL + path)
		if err != nil {
			t.Errorf("HEAD %s: %v", path, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d", path, resp.StatusCode)
		}
	}
}

// TestHosts: the view answers IP addresses, localhost and the names it is
// given; another name is a DNS rebinding attempt.
func TestHosts(t *testing.T) {
	h := Handler(newFakeSource(sample()), Options{AllowedHosts: []string{"kiln.lan"}})
	for host, ok := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.1": true, "[::1]:8080": true, "[::1]": true, "198.51.100.3:80": true,
		"localhost:8080": true, "LOCALHOST": true, "localhost.": true, "kiln.lan:8080": true, "KILN.LAN": true,
		"evil.example:8080": false, "evil.example": false, "": false, "127.0.0.1.evil.example": false,
		"localhost.evil.example:80": false, "kiln.lan.evil.example": false,
	} {
		r := request(http.MethodGet, "/api/snapshot", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Code == http.StatusOK; got != ok {
			t.Errorf("Host %q: status %d, want allowed %v", host, w.Code, ok)
		}
		if !ok && (w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "fleet.yaml")) {
			t.Errorf("Host %q: status %d, body %s", host, w.Code, w.Body)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// readEvents reads a stream's events into a channel, closed at its end.
func readEvents(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

func openStream(t *testing.T, url string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, readEvents(resp.Body)
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return sseEvent{}
}

// waitCalls waits until the Source has been asked n more times.
func waitCalls(t *testing.T, src *fakeSource, n int) {
	t.Helper()
	want := src.count() + n
	for deadline := time.Now().Add(10 * time.Second); src.count() < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the Source was asked %d times, want %d", src.count(), want)
		}
	}
}

// TestEventsOnChangeOnly: a live stream sends the snapshot at once, then
// nothing while only its time moves on, then the changed snapshot.
func TestEventsOnChangeOnly(t *testing.T) {
	src := newFakeSource(sample())
	srv := httptest.NewServer(Handler(src, Options{Interval: 10 * time.Millisecond}))
	t.Cleanup(srv.Close)
	_, events := openStream(t, srv.URL)
	ev := next(t, events)
	var got Snapshot
	if ev.name != "snapshot" || json.Unmarshal([]byte(ev.data), &got) != nil || got.SchemaVersion != SchemaVersion || len(got.Sets) != 2 {
		t.Fatalf("first event %q: %.200s", ev.name, ev.data)
	}
	for range 5 {
		src.change(func(s *Snapshot) { s.At = s.At.Add(time.Second) })
		waitCalls(t, src, 2)
	}
	select {
	case ev := <-events:
		t.Fatalf("an event without a change: %q %.200s", ev.name, ev.data)
	default:
	}
	src.change(func(s *Snapshot) { s.Sets[0].Instances[1].State = deploy.Stopped })
	ev = next(t, events)
	if ev.name != "snapshot" || json.Unmarshal([]byte(ev.data), &got) != nil || got.Sets[0].Instances[1].State != deploy.Stopped {
		t.Fatalf("after the change: %q %.200s", ev.name, ev.data)
	}
	if got.At != t0.Add(5*time.Second) {
		t.Errorf("the changed snapshot's time is %s", got.At)
	}
}

// TestEventsSourceError: a failing Source is told once, and the stream
// goes on with the snapshot when it answers again, changed or not.
func TestEventsSourceError(t *testing.T) {
	src := newFakeSource(sample())
	srv := httptest.NewServer(Handler(src, Options{Interval: 10 * time.Millisecond}))
	t.Cleanup(srv.Close)
	_, events := openStream(t, srv.URL)
	if ev := next(t, events); ev.name != "snapshot" {
		t.Fatalf("first event %q", ev.name)
	}
	src.fail(errors.New("the controller is restarting"))
	ev := next(t, events)
	var p problem
	if ev.name != "source-error" || json.Unmarshal([]byte(ev.data), &p) != nil || !strings.Contains(p.Error, "restarting") {
		t.Fatalf("after the failure: %q %s", ev.name, ev.data)
	}
	waitCalls(t, src, 5)
	src.fail(nil)
	if ev := next(t, events); ev.name != "snapshot" {
		t.Fatalf("after the recovery: %q %s (the same error twice?)", ev.name, ev.data)
	}
}

// TestEventsEnd: a stream ends with its client, and frees its place.
func TestEventsEnd(t *testing.T) {
	src := newFakeSource(sample())
	h := Handler(src, Options{Interval: 10 * time.Millisecond, MaxStreams: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request(http.MethodGet, "/api/events", nil).WithContext(ctx))
	}()
	waitCalls(t, src, 2)
	if w := get(t, h, "/api/events"); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "poll /api/snapshot") {
		t.Errorf("a second stream beyond MaxStreams 1: %d %s", w.Code, w.Body)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end with its request")
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	openStream(t, srv.URL) // the place is free again

	if w := get(t, Handler(src, Options{MaxStreams: -1}), "/api/events"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("with no streams allowed: %d", w.Code)
	}
}

// TestGraph: the drawing is deploy's, of the snapshot, drawn by Graphviz;
// drawn once per content (the time aside), validated by ETag.
func TestGraph(t *testing.T) {
	testutil.NeedTool(t, "dot")
	src := newFakeSource(sample())
	src.change(func(s *Snapshot) { s.Fleet = `fleet <b>"&amp;</b>.yaml` })
	h := Handler(src, Options{})
	w := get(t, h, "/api/graph.svg?v=1")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/svg+xml" || w.Header().Get("Content-Security-Policy") != drawingPolicy {
		t.Fatalf("status %d, headers %v: %s", w.Code, w.Header(), w.Body)
	}
	text := svgText(t, w.Body.Bytes())
	for _, want := range []string{`fleet <b>"&amp;</b>.yaml`, "ScaleSet web", "AvailabilitySet edge", "web-2", "edge-1",
		"update domain 2, unhealthy", "update domain 1, healthy", "guest 8080 at 127.0.0.1:40001", "198.51.100.3", "127.0.0.1:8080"} {
		if !strings.Contains(text, want) {
			t.Errorf("the drawing lacks %q:\n%s", want, text)
		}
	}
	tag := w.Header().Get("ETag")
	src.change(func(s *Snapshot) { s.At = s.At.Add(time.Hour) })
	if w := get(t, h, "/api/graph.svg?v=2", "If-None-Match", tag); w.Code != http.StatusNotModified {
		t.Errorf("the same fleet later: %d, want 304", w.Code)
	}
	src.change(func(s *Snapshot) { s.Sets[0].Instances[0].State = deploy.Stopped })
	w = get(t, h, "/api/graph.svg?v=3", "If-None-Match", tag)
	if w.Code != http.StatusOK || w.Header().Get("ETag") == tag || !strings.Contains(svgText(t, w.Body.Bytes()), "update domain 0, stopped") {
		t.Errorf("after a change: %d, ETag %s", w.Code, w.Header().Get("ETag"))
	}
}

// TestGraphCache: the same content is drawn once however often it is asked
// for; Graphviz is not run again.
func TestGraphCache(t *testing.T) {
	testutil.NeedTool(t, "dot")
	src := newFakeSource(sample())
	hd := &handler{src: src, opts: Options{}.withDefaults(), drawing: make(chan struct{}, 1)}
	ctx := context.Background()
	top := sample().Topology()
	first, tag, err := hd.draw(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir()) // no dot from here on
	again, tag2, err := hd.draw(ctx, top)
	if err != nil || tag2 != tag || !bytes.Equal(again, first) {
		t.Errorf("drawn again (%v)", err)
	}
	top.Sets[0].Instances[0].Status = deploy.StatusStopped
	if _, _, err := hd.draw(ctx, top); !errors.Is(err, deploy.ErrNoDot) {
		t.Errorf("a changed topology was not drawn again: %v", err)
	}
}

func TestGraphWithoutDot(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	w := get(t, Handler(newFakeSource(sample()), Options{}), "/api/graph.svg")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "graphviz") || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("status %d, type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

func TestGraphTooLarge(t *testing.T) {
	s := sample()
	s.Fleet = strings.Repeat("x", maxDOT)
	w := get(t, Handler(newFakeSource(s), Options{}), "/api/graph.svg")
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "too large to draw") {
		t.Errorf("status %d: %s", w.Code, w.Body)
	}
}

// svgText parses an SVG strictly and returns its text, lines joined.
func svgText(t *testing.T, doc []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	var text []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return strings.Join(text, "\n")
		}
		if err != nil {
			t.Fatalf("the SVG is not XML: %v", err)
		}
		if c, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(c)) != "" {
			text = append(text, string(c))
		}
	}
}

// TestTopology: a snapshot becomes deploy's topology: hosts in order of
// appearance, a running instance drawn by its health once probed.
func TestTopology(t *testing.T) {
	s := Snapshot{Fleet: "f.yaml", Sets: []SetView{{
		Name: "web", Kind: deploy.ScaleSet, Image: ImageView{Ref: "oci://r/web:1", Digest: newDigest},
		FaultDomains: 2, UpdateDomains: 2, LoadBalancer: &LoadBalancerView{Listen: "127.0.0.1:8080"},
		Instances: []InstanceView{
			{Name: "web-0", Host: "qemu+tcp://b/system", State: deploy.Running, Health: health.Healthy, UpdateDomain: 0,
				Forwards: []Forward{{GuestPort: 9090, HostPort: 2}, {GuestPort: 8080, HostPort: 1}}},
			{Name: "web-1", Host: "qemu:///system", State: deploy.Running, Health: health.Starting, FaultDomain: 1, UpdateDomain: 1},
			{Name: "web-2", Host: "qemu+tcp://b/system", State: deploy.Running, Health: health.Unhealthy, Address: "198.51.100.5"},
			{Name: "web-3", Host: "qemu:///system", State: deploy.Stopped, Health: health.Healthy},
			{Name: "web-4", Host: "qemu:///system", State: Creating},
		},
	}}}
	got := s.Topology()
	want := deploy.Topology{Title: "f.yaml", Hosts: []string{"qemu+tcp://b/system", "qemu:///system"}, Sets: []deploy.TopologySet{{
		Name: "web", Kind: deploy.ScaleSet, Image: "oci://r/web:1", Digest: newDigest, FaultDomains: 2, UpdateDomains: 2,
		LoadBalancer: &deploy.LoadBalancer{Address: "127.0.0.1:8080"},
		Instances: []deploy.TopologyInstance{
			{Name: "web-0", Host: "qemu+tcp://b/system", Status: deploy.StatusHealthy, Ports: []deploy.Forward{{HostPort: 1, GuestPort: 8080}, {HostPort: 2, GuestPort: 9090}}},
			{Name: "web-1", Host: "qemu:///system", Status: deploy.StatusRunning, FaultDomain: 1, UpdateDomain: 1},
			{Name: "web-2", Host: "qemu+tcp://b/system", Status: deploy.StatusUnhealthy, IP: "198.51.100.5"},
			{Name: "web-3", Host: "qemu:///system", Status: deploy.StatusStopped},
			{Name: "web-4", Host: "qemu:///system", Status: deploy.StatusCreating},
		},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}
