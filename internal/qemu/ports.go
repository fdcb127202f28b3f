package qemu

import (
	"fmt"
	"net"
)

// FreePort returns a port on 127.0.0.1 that is free for proto ("tcp", the
// default when empty, or "udp") at the time of the call: the kernel picks
// it, FreePort releases it. Another process may take it before QEMU binds
// it, so a caller whose machine fails to start on a busy port may retry
// with a new one.
func FreePort(proto string) (int, error) {
	switch proto {
	case "", "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("qemu: free tcp port: %w", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("qemu: free udp port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	default:
		return 0, fmt.Errorf("qemu: free port: unknown proto %q (want tcp or udp)", proto)
	}
}
