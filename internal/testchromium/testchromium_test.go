package testchromium

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// page shows "loading", then what /data answers; it also tries to reach
// the decoys (by a host name, by an address that is not loopback) and
// shows whether it could.
const page = `<!doctype html>
<title>testchromium</title>
<style>body { margin: 0 } #block { background: #2060c0; height: 400px }</style>
<p id="status">starting</p>
<p id="outside"></p>
<div id="block"></div>
<script>
const status = document.getElementById("status");
status.textContent = "loading";
fetch("/data").then(r => r.text()).then(t => { status.textContent = t; });
Promise.all(%s.map(u => fetch(u, {mode: "no-cors"}).then(() => "reached " + u, () => "refused")))
  .then(rs => { document.getElementById("outside").textContent = rs.join(" "); });
console.error("deliberate");
</script>`

// TestPage serves a page from 127.0.0.1 and follows it as it changes, and
// checks that the browser reaches nothing else: a decoy server on loopback
// named by a host name, and one on an address of this machine that is not
// loopback (when it has one), see no request.
func TestPage(t *testing.T) {
	testutil.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := Start(t)

	var hits atomic.Int32
	decoy := func(addr string) string {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
		s.Listener.Close()
		s.Listener = l
		s.Start()
		t.Cleanup(s.Close)
		return s.URL
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(decoy("127.0.0.1:0"), "http://"))
	// A name (even localhost) must not resolve: the page reaches 127.0.0.1
	// only. No decoy listens beyond loopback: tests send nothing to this
	// machine's other addresses.
	outside := []string{"http://localhost:" + port + "/"}
	quoted := make([]string, len(outside))
	for i, u := range outside {
		quoted[i] = fmt.Sprintf("%q", u)
	}

	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, page, "["+strings.Join(quoted, ", ")+"]")
	})
	mux.HandleFunc("GET /data", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			fmt.Fprint(w, "ready")
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(free) // before srv.Close: a waiting /data would hold it up

	p := b.NewPage(ctx, t)
	p.Navigate(ctx, srv.URL+"/")
	p.WaitFor(ctx, "the script", `document.getElementById("status").innerText === "loading"`)
	if got := p.Text(ctx, "#status"); !slices.Equal(got, []string{"loading"}) {
		t.Errorf("before /data answers the page shows %q", got)
	}
	free()
	p.WaitFor(ctx, "the answer", `document.getElementById("status").innerText === "ready"`)
	if got := p.Text(ctx, "#status, #missing"); !slices.Equal(got, []string{"ready"}) {
		t.Errorf("after /data answered the page shows %q", got)
	}
	p.WaitFor(ctx, "the outside fetches", `document.getElementById("outside").innerText !== ""`)
	if got, want := p.Text(ctx, "#outside")[0], strings.TrimSpace(strings.Repeat("refused ", len(outside))); got != want {
		t.Errorf("fetching outside 127.0.0.1: %q, want %q", got, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the decoys got %d requests", n)
	}

	var sum int
	if err := p.Eval(ctx, `Promise.resolve(40 + 2)`, &sum); err != nil || sum != 42 {
		t.Errorf("Eval of a promise: %d, %v", sum, err)
	}
	if err := p.Eval(ctx, `nosuchthing.x`, nil); err == nil || !strings.Contains(err.Error(), "nosuchthing") {
		t.Errorf("Eval of a bad expression: %v, want a ReferenceError", err)
	}

	KeepScreenshot(t, "testchromium.png", p.Screenshot(ctx, 800))

	reqs := p.Requests()
	for _, u := range append([]string{srv.URL + "/", srv.URL + "/data"}, outside...) {
		if !slices.Contains(reqs, u) {
			t.Errorf("requests %q: %s missing", reqs, u)
		}
	}
	rec := &recorder{TB: t}
	(&Page{t: rec, b: p.b, session: p.session}).OnlyFrom(srv.URL)
	if len(rec.errs) != len(outside) {
		t.Errorf("OnlyFrom(%s) reported %q, want the %d outside requests", srv.URL, rec.errs, len(outside))
	}
	if problems := strings.Join(p.Problems(), "\n"); !strings.Contains(problems, "deliberate") {
		t.Errorf("Problems: %s, want the console error", problems)
	}
}

// recorder keeps the errors a test would report.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
