// Package probe runs health checks against a guest: HTTP requests and TCP
// connects through forwarded ports, commands through whatever channel the
// caller has into the guest. kiln test and the deploy health probes share it.
package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Check is one probe. Exactly one of HTTP, TCP and Command is set.
type Check struct {
	Name    string
	HTTP    *HTTP
	TCP     *TCP
	Command *Command
	// Timeout is how long to keep retrying before the check fails.
	Timeout time.Duration
}

// HTTP expects Status (and Contains in the body) from GET Path on Port.
type HTTP struct {
	Port     int
	Path     string
	Status   int
	Contains string
}

// TCP expects Port to accept a connection.
type TCP struct{ Port int }

// Command expects a command in the guest to exit with ExitCode (and print
// Contains). Shell is run by /bin/sh.
type Command struct {
	Shell    string
	ExitCode int
	Contains string
}

// Target is how to reach a guest.
type Target struct {
	// Addr maps a guest TCP port to a host address ("127.0.0.1:40123").
	Addr func(guestPort int) (string, error)
	// Exec runs a shell command in the guest as root.
	Exec func(ctx context.Context, shell string) (output string, exitCode int, err error)
}

// Result is the outcome of one check.
type Result struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Attempts int           `json:"attempts"`
	Took     time.Duration `json:"took"`
	Detail   string        `json:"detail"` // what was seen last
}

// Run retries a check until it passes or its timeout ends.
func Run(ctx context.Context, c Check, t Target) Result {
	start := time.Now()
	if c.HTTP == nil && c.TCP == nil && c.Command == nil {
		return Result{Name: c.Name, Attempts: 1, Detail: "empty check: it names no http, tcp or command probe"}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := Result{Name: c.Name}
	for {
		res.Attempts++
		detail, err := once(ctx, c, t)
		res.Detail = detail
		if err == nil {
			res.OK, res.Took = true, time.Since(start)
			return res
		}
		res.Detail = err.Error()
		select {
		case <-ctx.Done():
			res.Took = time.Since(start)
			return res
		case <-time.After(time.Second):
		}
	}
}

func once(ctx context.Context, c Check, t Target) (string, error) {
	switch {
	case c.HTTP != nil:
		return httpOnce(ctx, c.HTTP, t)
	case c.TCP != nil:
		addr, err := t.Addr(c.TCP.Port)
		if err != nil {
			return "", err
		}
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return "", fmt.Errorf("connect to guest port %d: %v", c.TCP.Port, err)
		}
		// Through QEMU's user networking a connect succeeds even when nothing
		// listens in the guest; the connection is then closed at once. Wait
		// briefly for that close to tell the two apart.
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, rerr := conn.Read(make([]byte, 1))
		conn.Close()
		if rerr == io.EOF {
			return "", fmt.Errorf("guest port %d: connection closed (nothing listening)", c.TCP.Port)
		}
		return fmt.Sprintf("guest port %d accepts connections", c.TCP.Port), nil
	case c.Command != nil:
		if t.Exec == nil {
			return "", fmt.Errorf("no channel into the guest to run commands")
		}
		out, code, err := t.Exec(ctx, c.Command.Shell)
		if err != nil {
			return "", err
		}
		if code != c.Command.ExitCode {
			return "", fmt.Errorf("exit code %d, want %d; output: %s", code, c.Command.ExitCode, tail(out))
		}
		if c.Command.Contains != "" && !strings.Contains(out, c.Command.Contains) {
			return "", fmt.Errorf("output lacks %q: %s", c.Command.Contains, tail(out))
		}
		return "exit code " + fmt.Sprint(code), nil
	}
	return "", fmt.Errorf("empty check")
}

func httpOnce(ctx context.Context, h *HTTP, t Target) (string, error) {
	addr, err := t.Addr(h.Port)
	if err != nil {
		return "", err
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s on guest port %d: %v", path, h.Port, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	want := h.Status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return "", fmt.Errorf("GET %s on guest port %d: status %d, want %d", path, h.Port, resp.StatusCode, want)
	}
	if h.Contains != "" && !strings.Contains(string(body), h.Contains) {
		return "", fmt.Errorf("GET %s on guest port %d: body lacks %q: %s", path, h.Port, h.Contains, tail(string(body)))
	}
	return fmt.Sprintf("GET %s: %d", path, resp.StatusCode), nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = "..." + s[len(s)-300:]
	}
	return s
}
