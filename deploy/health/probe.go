package health

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Probe is what is asked of an instance: exactly one of HTTP and TCP. It
// has the fields of a recipe's HTTP and TCP checks (recipes.HTTPCheck,
// recipes.TCPCheck), so a role's checks become probes field by field.
type Probe struct {
	HTTP *HTTPProbe
	TCP  *TCPProbe
}

// HTTPProbe passes when GET Path on Port answers Status and, when Contains
// is set, a body that contains it.
type HTTPProbe struct {
	Port     int
	Path     string // default "/"
	Status   int    // default 200
	Contains string
}

// TCPProbe passes when Port accepts a connection.
type TCPProbe struct {
	Port int
}

// DefaultProbe fills an HTTP probe's Path ("/") and Status (200).
func DefaultProbe(p *Probe) {
	if h := p.HTTP; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Status == 0 {
			h.Status = 200
		}
	}
}

// ValidateProbe checks a defaulted Probe and returns every problem, each a
// *FieldError, joined.
func ValidateProbe(p Probe) error {
	var errs []error
	switch {
	case p.HTTP == nil && p.TCP == nil:
		errs = append(errs, fieldErr("", "a probe needs http or tcp"))
	case p.HTTP != nil && p.TCP != nil:
		errs = append(errs, fieldErr("", "a probe is http or tcp, not both"))
	}
	port := func(field string, n int) {
		if n < 1 || n > 65535 {
			errs = append(errs, fieldErr(field, "port must be 1-65535, got %d", n))
		}
	}
	if h := p.HTTP; h != nil {
		port("http.port", h.Port)
		if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n") {
			errs = append(errs, fieldErr("http.path", "path must start with / and hold no spaces, got %q", h.Path))
		}
		if h.Status < 100 || h.Status > 599 {
			errs = append(errs, fieldErr("http.status", "status must be an HTTP status code (100-599), got %d", h.Status))
		}
	}
	if t := p.TCP; t != nil {
		port("tcp.port", t.Port)
	}
	return errors.Join(errs...)
}

// maxBodyQuote bounds how much of a body a failure's detail quotes.
const maxBodyQuote = 64

// Evaluate turns an HTTP answer into a Result: err is the transport error
// (no answer: refused, timed out), else status and body are what came
// back. The caller reads at most as much body as it cares to.
func (h HTTPProbe) Evaluate(status int, body []byte, err error) Result {
	what := "GET " + h.Path
	switch {
	case err != nil:
		return Fail(fmt.Sprintf("%s: %v", what, err))
	case status != h.Status:
		return Fail(fmt.Sprintf("%s: status %d, want %d%s", what, status, h.Status, quoteBody(body)))
	case h.Contains != "" && !strings.Contains(string(body), h.Contains):
		return Fail(fmt.Sprintf("%s: body does not contain %q%s", what, h.Contains, quoteBody(body)))
	}
	return Pass(fmt.Sprintf("%s: status %d", what, status))
}

// quoteBody is the start of a body, for a failure's detail.
func quoteBody(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s, more := string(b), ""
	if len(s) > maxBodyQuote {
		s, more = s[:maxBodyQuote], "…"
	}
	return " (body " + strconv.Quote(s) + more + ")"
}

// Evaluate turns a connection attempt into a Result: err is the dial's
// error, nil when the port accepted.
func (t TCPProbe) Evaluate(err error) Result {
	if err != nil {
		return Fail(fmt.Sprintf("connect port %d: %v", t.Port, err))
	}
	return Pass(fmt.Sprintf("connect port %d: accepted", t.Port))
}
