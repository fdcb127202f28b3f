package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func addrOf(srv string) func(int) (string, error) {
	return func(int) (string, error) { return srv, nil }
}

func TestHTTP(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if hits < 3 { // not ready yet: retried
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, "hello from kiln")
	}))
	defer srv.Close()
	target := Target{Addr: addrOf(strings.TrimPrefix(srv.URL, "http://"))}
	res := Run(context.Background(), Check{Name: "h", HTTP: &HTTP{Port: 80, Path: "/", Status: 200, Contains: "kiln"}, Timeout: 10 * time.Second}, target)
	if !res.OK || res.Attempts != 3 {
		t.Fatalf("%+v", res)
	}
	res = Run(context.Background(), Check{HTTP: &HTTP{Port: 80, Contains: "nope"}, Timeout: 1500 * time.Millisecond}, target)
	if res.OK || !strings.Contains(res.Detail, `body lacks "nope"`) {
		t.Fatalf("%+v", res)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(time.Second); c.Close() }()
		}
	}()
	addr := l.Addr().String()
	if res := Run(context.Background(), Check{TCP: &TCP{Port: 22}, Timeout: 5 * time.Second}, Target{Addr: addrOf(addr)}); !res.OK {
		t.Fatalf("%+v", res)
	}
	l.Close()
	if res := Run(context.Background(), Check{TCP: &TCP{Port: 22}, Timeout: 1500 * time.Millisecond}, Target{Addr: addrOf(addr)}); res.OK {
		t.Fatalf("closed port passed: %+v", res)
	}
}

func TestCommand(t *testing.T) {
	exec := func(ctx context.Context, sh string) (string, int, error) {
		if sh == "sysctl -n net.ipv4.ip_forward" {
			return "1\n", 0, nil
		}
		return "boom", 3, nil
	}
	tg := Target{Exec: exec}
	if res := Run(context.Background(), Check{Command: &Command{Shell: "sysctl -n net.ipv4.ip_forward", Contains: "1"}, Timeout: time.Second}, tg); !res.OK {
		t.Fatalf("%+v", res)
	}
	res := Run(context.Background(), Check{Command: &Command{Shell: "false"}, Timeout: 1500 * time.Millisecond}, tg)
	if res.OK || !strings.Contains(res.Detail, "exit code 3, want 0") {
		t.Fatalf("%+v", res)
	}
}
