package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
)

// reach is where a guest port of an instance is reached from this host: its
// 127.0.0.1 forward (user networking) or its own address on a libvirt
// network; "" when neither is known yet.
func reach(in deploy.Instance, port int) string {
	if hp, ok := in.Ports[port]; ok && hp > 0 {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
	}
	if in.Address != "" {
		return net.JoinHostPort(in.Address, strconv.Itoa(port))
	}
	return ""
}

// maxProbeBody is how much of an answer a probe reads.
const maxProbeBody = 64 << 10

// probe asks an instance once, within timeout.
func probe(ctx context.Context, p health.Probe, in deploy.Instance, timeout time.Duration) health.Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTP != nil:
		addr := reach(in, p.HTTP.Port)
		if addr == "" {
			return health.Fail(fmt.Sprintf("port %d: not reachable from this host yet (no forward, no address)", p.HTTP.Port))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.HTTP.Path, nil)
		if err != nil {
			return health.Fail(err.Error())
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return p.HTTP.Evaluate(0, nil, shortErr(err))
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
		return p.HTTP.Evaluate(resp.StatusCode, body, nil)
	case p.TCP != nil:
		addr := reach(in, p.TCP.Port)
		if addr == "" {
			return health.Fail(fmt.Sprintf("port %d: not reachable from this host yet (no forward, no address)", p.TCP.Port))
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return p.TCP.Evaluate(shortErr(err))
		}
		c.Close()
		return p.TCP.Evaluate(nil)
	}
	return health.Fail("no probe")
}

// probeClient keeps no connections: each probe is a new one, as a new
// client's would be, and a wedged instance holds no pooled socket.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// shortErr drops the request line Go puts before a transport error, which
// names the forwarded port: the same failure reads the same on every
// instance, as repair's storm check needs.
type probeErr struct{ msg string }

func (e probeErr) Error() string { return e.msg }

func shortErr(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return probeErr{msg}
}
