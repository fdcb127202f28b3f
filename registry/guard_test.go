package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

type recordingTransport struct{ hosts []string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Scheme+"://"+req.URL.Host)
	return nil, errors.New("not sent in this test")
}

// Plain HTTP goes only to loopback, to hosts the config lists, or with
// --insecure: never silently to another host (go-containerregistry alone
// would fall back to HTTP for private addresses; the guard does not care
// what kind of address it is).
func TestPlainHTTPGuard(t *testing.T) {
	// Placeholder hosts only: the recording transport sends nothing.
	const listed, other = "registry.example.com:5000", "other.example.com:5000"
	for _, c := range []struct {
		opts Options
		url  string
		sent bool
	}{
		{Options{}, "http://127.0.0.1:5000/v2/", true},
		{Options{}, "http://localhost:5000/v2/", true},
		{Options{}, "http://[::1]:5000/v2/", true},
		{Options{}, "http://" + listed + "/v2/", false},
		{Options{}, "https://" + listed + "/v2/", true},
		{Options{InsecureRegistries: []string{listed}}, "http://" + listed + "/v2/", true},
		{Options{InsecureRegistries: []string{listed}}, "http://" + other + "/v2/", false},
		{Options{Insecure: true}, "http://" + other + "/v2/", true},
	} {
		rec := &recordingTransport{}
		c.opts.Transport = rec
		cl := New(c.opts)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, c.url, nil)
		_, err := cl.transport.RoundTrip(req)
		if sent := len(rec.hosts) == 1; sent != c.sent {
			t.Errorf("%s with %+v: sent %v, want %v (%v)", c.url, c.opts, sent, c.sent, err)
		}
		if !c.sent && (err == nil || !strings.Contains(err.Error(), "--insecure")) {
			t.Errorf("%s: refusal does not say how to allow it: %v", c.url, err)
		}
	}
}
