package testregistry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// Without faults the proxy is invisible: uploads (monolithic and chunked
// streams) go through it because it rewrites Location, ranges and HEAD
// pass, and a registry that is down shows as 502 until it is back.
func TestFaultProxyForwards(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)
	c := noKeepAlive()
	data := randomBytes(t, 3<<20)
	dgst := sha256Digest(data)

	resp := do(t, c, "POST", p.URL()+"/v2/kiln/stream/blobs/uploads/", nil, nil)
	readAll(t, resp)
	loc := resp.Header.Get("Location")
	if u, err := url.Parse(loc); err != nil || u.Host != p.Host {
		t.Fatalf("Location %q does not point at the proxy %s", loc, p.Host)
	}
	// A body of unknown length goes out chunked; the proxy streams it on.
	pr, pw := io.Pipe()
	go func() {
		for b := data; len(b) > 0; b = b[min(len(b), 64<<10):] {
			if _, err := pw.Write(b[:min(len(b), 64<<10)]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequest("PATCH", loc, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // unknown: sent with Transfer-Encoding: chunked
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("chunked PATCH: %s", resp.Status)
	}
	resp = do(t, c, "PUT", withDigest(t, resolve(t, loc, resp.Header.Get("Location")), dgst), nil, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT ?digest=: %s %s", resp.Status, b)
	}

	blob := p.URL() + "/v2/kiln/stream/blobs/" + dgst
	resp = do(t, c, "HEAD", blob, nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD: %s, Content-Length %d", resp.Status, resp.ContentLength)
	}
	resp = do(t, c, "GET", blob, nil, nil)
	if b := readAll(t, resp); !bytes.Equal(b, data) {
		t.Fatalf("GET through the proxy: %s, %d bytes", resp.Status, len(b))
	}
	resp = do(t, c, "GET", blob, nil, http.Header{"Range": {"bytes=100-199"}})
	if b := readAll(t, resp); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, data[100:200]) {
		t.Fatalf("ranged GET through the proxy: %s, %d bytes", resp.Status, len(b))
	}
	if got, want := p.BytesServed(dgst), int64(len(data)+100); got != want {
		t.Errorf("BytesServed = %d, want %d", got, want)
	}

	r.Stop()
	resp = do(t, c, "GET", p.URL()+"/v2/", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("GET with the registry down: %s, want 502", resp.Status)
	}
	r.Restart(t)
	resp = do(t, c, "GET", blob, nil, nil)
	if b := readAll(t, resp); !bytes.Equal(b, data) {
		t.Fatalf("GET after the restart: %s, %d bytes", resp.Status, len(b))
	}
}

func TestFaultStatus(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)
	c := noKeepAlive()
	data := randomBytes(t, 1000)
	f := Fault{Method: "GET", PathContains: "/blobs/", Kind: Status, Code: http.StatusServiceUnavailable, Times: 2}
	p.Add(f)

	dgst := pushBlob(t, c, p.URL(), "kiln/status", data) // POST, PUT: not matched
	for i := range 2 {
		resp := do(t, c, "GET", p.URL()+"/v2/kiln/status/blobs/"+dgst, nil, nil)
		b := readAll(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"errors"`) {
			t.Fatalf("GET %d: %s %s, want the injected 503 with an error body", i+1, resp.Status, b)
		}
	}
	resp := do(t, c, "GET", p.URL()+"/v2/kiln/status/blobs/"+dgst, nil, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("GET 3: %s, want the blob once the fault is spent", resp.Status)
	}
	if n := p.Hits()[f]; n != 2 {
		t.Errorf("Hits = %d, want 2", n)
	}
	if n := p.BytesServed(dgst); n != int64(len(data)) {
		t.Errorf("BytesServed = %d, want only the forwarded %d", n, len(data))
	}
}

// DropAfter cuts the big blob mid-body with a reset, leaves the small blob
// alone (MinSize), and a ranged GET then resumes where the cut was.
func TestFaultDropAfter(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)
	c := noKeepAlive()
	small, big := randomBytes(t, 100), randomBytes(t, 1<<20)
	smallD := pushBlob(t, c, r.URL(), "kiln/drop", small)
	bigD := pushBlob(t, c, r.URL(), "kiln/drop", big)
	const cut = 256 << 10
	f := Fault{Method: "GET", PathContains: "/blobs/", Kind: DropAfter, Bytes: cut, Times: 1, MinSize: 512 << 10}
	p.Add(f)

	resp := do(t, c, "GET", p.URL()+"/v2/kiln/drop/blobs/"+smallD, nil, nil)
	if b := readAll(t, resp); !bytes.Equal(b, small) {
		t.Fatalf("small blob: %s, %d bytes", resp.Status, len(b))
	}
	resp = do(t, c, "GET", p.URL()+"/v2/kiln/drop/blobs/"+bigD, nil, nil)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("big blob: read %d bytes, error %v, want a connection reset", len(got), err)
	}
	if len(got) != cut || !bytes.Equal(got, big[:cut]) {
		t.Fatalf("big blob: %d bytes before the reset, want the first %d", len(got), cut)
	}
	t.Logf("the client saw: %v after %d bytes", err, len(got))

	resp = do(t, c, "GET", p.URL()+"/v2/kiln/drop/blobs/"+bigD, nil, http.Header{"Range": {"bytes=262144-"}})
	if b := readAll(t, resp); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, big[cut:]) {
		t.Fatalf("resume: %s, %d bytes", resp.Status, len(b))
	}
	if n := p.Hits()[f]; n != 1 {
		t.Errorf("Hits = %d, want 1", n)
	}
	if n := p.BytesServed(bigD); n != int64(len(big)) {
		t.Errorf("BytesServed(big) = %d, want %d: cut part plus resumed rest", n, len(big))
	}
}

// Truncate announces the whole body and sends part of it: the client sees
// an unexpected EOF, Times times, then the blob.
func TestFaultTruncate(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)
	c := noKeepAlive()
	data := randomBytes(t, 200<<10)
	dgst := pushBlob(t, c, r.URL(), "kiln/trunc", data)
	f := Fault{PathContains: "/blobs/sha256:", Kind: Truncate, Bytes: 1000, Times: 2}
	p.Add(f)

	blob := p.URL() + "/v2/kiln/trunc/blobs/" + dgst
	resp := do(t, c, "HEAD", blob, nil, nil) // a HEAD has no body to cut
	readAll(t, resp)
	for i := range 2 {
		resp := do(t, c, "GET", blob, nil, nil)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ContentLength != int64(len(data)) {
			t.Fatalf("GET %d: Content-Length %d, want the full %d", i+1, resp.ContentLength, len(data))
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != 1000 {
			t.Fatalf("GET %d: %d bytes, error %v, want 1000 and an unexpected EOF", i+1, len(got), err)
		}
	}
	resp = do(t, c, "GET", blob, nil, nil)
	if b := readAll(t, resp); !bytes.Equal(b, data) {
		t.Fatalf("GET 3: %d bytes, want the blob", len(b))
	}
	if n := p.Hits()[f]; n != 2 {
		t.Errorf("Hits = %d, want 2", n)
	}
}

// DropRequest resets the connection before the registry sees the request:
// the upload's PUT fails, and the same PUT then completes it.
func TestFaultDropRequest(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)
	c := noKeepAlive()
	data := randomBytes(t, 64<<10)
	dgst := sha256Digest(data)
	fPut := Fault{Method: "PUT", PathContains: "/blobs/uploads/", Kind: DropRequest, Times: 1}
	fGet := Fault{Method: "GET", PathContains: "/v2/", Kind: DropRequest, Times: 1}
	p.Add(fPut)
	p.Add(fGet)

	if _, err := try(c, "GET", p.URL()+"/v2/", nil, nil); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("GET /v2/: error %v, want a connection reset", err)
	}
	loc := startUpload(t, c, p.URL(), "kiln/dropreq")
	put := withDigest(t, loc, dgst)
	// The client may be still sending the body when the reset comes, and
	// Go's transport then reports its own closing of the connection
	// rather than ECONNRESET: any error will do.
	if _, err := try(c, "PUT", put, data, nil); err == nil {
		t.Fatal("PUT: no error, want the connection cut")
	} else {
		t.Logf("the client saw: %v", err)
	}
	resp := do(t, c, "PUT", put, data, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT again: %s %s", resp.Status, b)
	}
	if h := p.Hits(); h[fPut] != 1 || h[fGet] != 1 {
		t.Errorf("Hits = %v, want each once", h)
	}
}

// Faults are tried in the order added, one per request.
func TestFaultOrder(t *testing.T) {
	testutil.Integration(t)
	r := Start(t, Options{})
	p := NewFaultProxy(t, r)
	c := noKeepAlive()
	p.Add(Fault{PathContains: "/v2/", Kind: Status, Code: 500, Times: 1})
	p.Add(Fault{PathContains: "/v2/", Kind: Status, Code: 429, Times: 1})
	for _, want := range []int{500, 429, 200} {
		resp := do(t, c, "GET", p.URL()+"/v2/", nil, nil)
		readAll(t, resp)
		if resp.StatusCode != want {
			t.Fatalf("GET /v2/: %s, want %d", resp.Status, want)
		}
	}
}

func TestFaultCheck(t *testing.T) {
	for _, c := range []struct {
		f  Fault
		ok bool
	}{
		{Fault{Kind: Status, Code: 503, Times: 1}, true},
		{Fault{Kind: DropAfter, Bytes: 10, MinSize: 100, Times: 3}, true},
		{Fault{Kind: Truncate, Times: 1}, true},
		{Fault{Kind: DropRequest, Method: "PUT", Times: 1}, true},
		{Fault{Kind: Status, Times: 1}, false},                   // no code
		{Fault{Kind: Status, Code: 503}, false},                  // never hits
		{Fault{Kind: DropRequest, MinSize: 10, Times: 1}, false}, // no response to measure
		{Fault{Kind: Status, Code: 503, Bytes: 5, Times: 1}, false},
		{Fault{Kind: Truncate, Code: 503, Times: 1}, false},
		{Fault{Kind: DropAfter, Bytes: -1, Times: 1}, false},
		{Fault{Kind: 0, Times: 1}, false},
	} {
		if err := c.f.check(); (err == nil) != c.ok {
			t.Errorf("%v: check() = %v, want ok %v", c.f, err, c.ok)
		}
	}
}

func TestRewriteLocation(t *testing.T) {
	p := &FaultProxy{Host: "127.0.0.1:2000", target: "127.0.0.1:1000"}
	for in, want := range map[string]string{
		"http://127.0.0.1:1000/v2/a/blobs/uploads/u?_state=x%3D": "http://127.0.0.1:2000/v2/a/blobs/uploads/u?_state=x%3D",
		"/v2/a/blobs/uploads/u?_state=x":                         "/v2/a/blobs/uploads/u?_state=x",
		"http://example.com/v2/a/blobs/sha256:ab":                "http://example.com/v2/a/blobs/sha256:ab",
	} {
		if got := p.rewriteLocation(in); got != want {
			t.Errorf("rewriteLocation(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestForwardHeader(t *testing.T) {
	h := http.Header{
		"Connection":        {"close, X-Hop"},
		"X-Hop":             {"1"},
		"Transfer-Encoding": {"chunked"},
		"Range":             {"bytes=0-9"},
		"Authorization":     {"Basic eA=="},
	}
	got := forwardHeader(h)
	for _, k := range []string{"Connection", "X-Hop", "Transfer-Encoding"} {
		if got.Get(k) != "" {
			t.Errorf("%s forwarded", k)
		}
	}
	for _, k := range []string{"Range", "Authorization"} {
		if got.Get(k) != h.Get(k) {
			t.Errorf("%s not forwarded", k)
		}
	}
}
