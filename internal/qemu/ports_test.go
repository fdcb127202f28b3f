package qemu

import (
	"fmt"
	"net"
	"testing"
)

func TestFreePort(t *testing.T) {
	for _, proto := range []string{"tcp", "udp", ""} {
		p, err := FreePort(proto)
		if err != nil || p <= 0 || p > 65535 {
			t.Fatalf("FreePort(%q) = %d, %v", proto, p, err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		if proto == "udp" {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Fatalf("udp port %d is not free: %v", p, err)
			}
			c.Close()
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("tcp port %d is not free: %v", p, err)
		}
		l.Close()
	}
	if _, err := FreePort("sctp"); err == nil {
		t.Error("FreePort(sctp) succeeded")
	}
}
