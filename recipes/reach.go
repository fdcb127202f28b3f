package recipes

import "strconv"

// Where a role's service is probed from.
//
// kiln test (and deploy's health probes) run http and tcp checks from the
// host, through a port forwarded to the guest's first interface. Only a
// service listening on every address is sure to answer there. A service bound
// to loopback is meant for the VM itself (an app and its database on one VM),
// and one bound to a particular address may not be reachable through the
// forwarded port at all: both are probed inside the guest, at an address they
// listen on, with a command check.

// listensEverywhere reports whether a service bound to addr accepts
// connections on every IPv4 address. An empty address means the role's
// default, every address. v6Wildcard says whether the service's "::" also
// accepts IPv4, as it does for sockets without IPV6_V6ONLY (HAProxy, most
// apps); PostgreSQL sets IPV6_V6ONLY, so its "::" is IPv6 only.
func listensEverywhere(addr string, v6Wildcard bool) bool {
	switch addr {
	case "", "*", "0.0.0.0":
		return true
	case "::":
		return v6Wildcard
	}
	return false
}

// localAddr is the address a probe inside the guest connects to, for a
// service bound to addr.
func localAddr(addr string) string {
	switch addr {
	case "", "*", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return addr
}

// The in-guest probes need nothing beyond bash and coreutils, which every
// Debian image has (both are Essential): curl or nc may be missing. Values
// are passed as arguments, never pasted into the script.
const (
	tcpProbeScript  = `exec 3<>"/dev/tcp/$1/$2"`
	httpProbeScript = `exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3 && ` +
		`read -r _ code _ <&3 && echo "HTTP $code" && test "$code" = "$4"`
)

// guestTCPCheck connects to addr:port from inside the guest.
func guestTCPCheck(name, addr string, port int) Check {
	return Check{Name: name, Command: &CommandCheck{Run: Command{Argv: []string{
		"timeout", "5", "bash", "-c", tcpProbeScript, "tcp", localAddr(addr), strconv.Itoa(port)}}}}
}

// guestHTTPCheck sends GET path to addr:port from inside the guest and
// expects status.
func guestHTTPCheck(name, addr string, port int, path string, status int) Check {
	return Check{Name: name, Command: &CommandCheck{Run: Command{Argv: []string{
		"timeout", "10", "bash", "-c", httpProbeScript, "http", localAddr(addr), strconv.Itoa(port), path, strconv.Itoa(status)}}}}
}

// tcpCheck probes a service bound to addr (v6Wildcard as for
// listensEverywhere): from the host when it listens everywhere, else inside
// the guest.
func tcpCheck(name, addr string, v6Wildcard bool, port int) Check {
	if listensEverywhere(addr, v6Wildcard) {
		return Check{Name: name, TCP: &TCPCheck{Port: port}}
	}
	return guestTCPCheck(name, addr, port)
}

// httpCheck is tcpCheck for an HTTP endpoint that must answer status.
func httpCheck(name, addr string, v6Wildcard bool, port int, path string, status int) Check {
	if listensEverywhere(addr, v6Wildcard) {
		return Check{Name: name, HTTP: &HTTPCheck{Port: port, Path: path, Status: status}}
	}
	return guestHTTPCheck(name, addr, port, path, status)
}
