package health

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateProbe(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Probe
		want []string
	}{
		{"http", Probe{HTTP: &HTTPProbe{Port: 8080}}, nil},
		{"tcp", Probe{TCP: &TCPProbe{Port: 22}}, nil},
		{"none", Probe{}, []string{""}},
		{"both", Probe{HTTP: &HTTPProbe{Port: 80}, TCP: &TCPProbe{Port: 22}}, []string{""}},
		{"bad port", Probe{TCP: &TCPProbe{Port: 70000}}, []string{"tcp.port"}},
		{"bad path and status", Probe{HTTP: &HTTPProbe{Port: 80, Path: "healthz", Status: 42}}, []string{"http.path", "http.status"}},
		{"space in path", Probe{HTTP: &HTTPProbe{Port: 80, Path: "/a b"}}, []string{"http.path"}},
		{"no port", Probe{HTTP: &HTTPProbe{}}, []string{"http.port"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			DefaultProbe(&c.p)
			if got := fields(ValidateProbe(c.p)); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("problems at %q, want %q (%v)", got, c.want, ValidateProbe(c.p))
			}
		})
	}
}

func TestDefaultProbe(t *testing.T) {
	p := Probe{HTTP: &HTTPProbe{Port: 80}}
	DefaultProbe(&p)
	if *p.HTTP != (HTTPProbe{Port: 80, Path: "/", Status: 200}) {
		t.Errorf("got %+v", *p.HTTP)
	}
	tcp := Probe{TCP: &TCPProbe{Port: 22}}
	DefaultProbe(&tcp) // nothing to fill, no panic
}

func TestHTTPEvaluate(t *testing.T) {
	h := HTTPProbe{Port: 8080, Path: "/healthz", Status: 200, Contains: "ok"}
	for _, c := range []struct {
		name   string
		probe  HTTPProbe
		status int
		body   string
		err    error
		ok     bool
		detail string
	}{
		{"pass", h, 200, `{"status":"ok"}`, nil, true, "GET /healthz: status 200"},
		{"no answer", h, 0, "", errors.New("connection refused"), false, "GET /healthz: connection refused"},
		{"wrong status", h, 503, "down", nil, false, `GET /healthz: status 503, want 200 (body "down")`},
		{"wrong status, no body", h, 500, "", nil, false, "GET /healthz: status 500, want 200"},
		{"body without the text", h, 200, "starting", nil, false, `GET /healthz: body does not contain "ok" (body "starting")`},
		{"long body cut", h, 200, strings.Repeat("x", 100), nil, false, `GET /healthz: body does not contain "ok" (body "` + strings.Repeat("x", 64) + `"…)`},
		{"no text asked", HTTPProbe{Path: "/", Status: 204}, 204, "", nil, true, "GET /: status 204"},
		{"other status expected", HTTPProbe{Path: "/", Status: 401}, 200, "", nil, false, "GET /: status 200, want 401"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.probe.Evaluate(c.status, []byte(c.body), c.err)
			if got.OK != c.ok || got.Detail != c.detail {
				t.Errorf("got %+v, want ok=%v %q", got, c.ok, c.detail)
			}
		})
	}
}

func TestTCPEvaluate(t *testing.T) {
	p := TCPProbe{Port: 5432}
	if r := p.Evaluate(nil); !r.OK || r.Detail != "connect port 5432: accepted" {
		t.Errorf("accepted: %+v", r)
	}
	if r := p.Evaluate(errors.New("i/o timeout")); r.OK || r.Detail != "connect port 5432: i/o timeout" {
		t.Errorf("timeout: %+v", r)
	}
}
