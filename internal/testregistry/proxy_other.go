//go:build unix && !linux

package testregistry

import (
	"net"
	"time"
)

// waitSent cannot look at the send queue here: a DropAfter fault's reset
// may discard bytes the proxy counted as served.
func waitSent(net.Conn, time.Time) {}
