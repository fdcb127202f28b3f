package recipes

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/kiln-project/kiln/internal/lazyre"
)

func init() {
	registerRole(roleDef{
		name:    "network",
		summary: "network gateway: dnsmasq DHCP and DNS for a LAN, nftables NAT and a default-deny firewall with allowed ports, IP forwarding",
		new: func() RoleParams {
			return &Gateway{WAN: "eth0", LAN: GatewayLAN{Interface: "eth1", Address: "10.10.0.1/24", Domain: "lan"},
				NAT: true, Forward: true, Allow: []FirewallRule{{Port: 22, Proto: "tcp", From: "any"}}}
		},
	})
}

// Gateway is the network role.
type Gateway struct {
	WAN      string         `yaml:"wan" doc:"uplink interface (DHCP client, masquerade out of it)"`
	LAN      GatewayLAN     `yaml:"lan" doc:"the subnet this gateway serves"`
	Hosts    []GatewayHost  `yaml:"hosts" doc:"names answered by DNS (and fixed DHCP leases when mac is set)"`
	Upstream []string       `yaml:"upstream" doc:"upstream DNS servers; default: the WAN's resolvers"`
	NAT      bool           `yaml:"nat" doc:"masquerade LAN traffic leaving by the WAN"`
	Forward  bool           `yaml:"forward" doc:"route LAN -> WAN (net.ipv4.ip_forward=1)"`
	Allow    []FirewallRule `yaml:"allow" doc:"inbound ports to open (everything else is dropped); DHCP and DNS on the LAN are always open"`
}

// GatewayLAN is the served subnet.
type GatewayLAN struct {
	Interface string       `yaml:"interface" doc:"LAN interface"`
	Address   string       `yaml:"address" doc:"the gateway's address on the LAN, CIDR"`
	Domain    string       `yaml:"domain" doc:"DNS domain of LAN hosts"`
	DHCP      GatewayRange `yaml:"dhcp" doc:"DHCP pool"`
}

// GatewayRange is a DHCP pool.
type GatewayRange struct {
	Disabled  bool     `yaml:"disabled" doc:"serve no DHCP, only DNS"`
	Start     string   `yaml:"start" doc:"first address; default .100 of the subnet (or the upper half of a small one)"`
	End       string   `yaml:"end" doc:"last address; default .200"`
	LeaseTime Duration `yaml:"leaseTime" doc:"lease time; default 12h"`
}

// GatewayHost is a LAN host known to DNS.
type GatewayHost struct {
	Name    string `yaml:"name" doc:"host name (without the domain)"`
	Address string `yaml:"address" doc:"IPv4 address"`
	MAC     string `yaml:"mac" doc:"MAC address for a fixed DHCP lease"`
}

// FirewallRule opens an inbound port.
type FirewallRule struct {
	Port  int    `yaml:"port" doc:"port number"`
	Proto string `yaml:"proto" doc:"tcp (default) or udp"`
	From  string `yaml:"from" doc:"lan, wan or any (default)"`
}

var ifaceRE = lazyre.New(`^[a-zA-Z0-9_.-]{1,15}$`)

func (g *Gateway) validate(v *validator) {
	g.warnProbes(v)
	if !ifaceRE.MatchString(g.WAN) {
		v.errorf("wan", "invalid interface name %q", g.WAN)
	}
	if !ifaceRE.MatchString(g.LAN.Interface) {
		v.errorf("lan.interface", "invalid interface name %q", g.LAN.Interface)
	}
	if g.WAN == g.LAN.Interface {
		v.errorf("lan.interface", "the LAN and WAN must be different interfaces")
	}
	prefix, err := netip.ParsePrefix(g.LAN.Address)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() > 30 {
		v.errorf("lan.address", "invalid LAN address %q (want the gateway's IPv4 address with its prefix, like 10.10.0.1/24)", g.LAN.Address)
		return
	}
	if !hostnameRE.MatchString(g.LAN.Domain) {
		v.errorf("lan.domain", "invalid domain %q", g.LAN.Domain)
	}
	inLAN := func(p, a string) {
		ip, err := netip.ParseAddr(a)
		if err != nil || !prefix.Contains(ip) {
			v.errorf(p, "%q is not an address in %s", a, prefix.Masked())
		}
	}
	if d := g.pool(prefix); !d.Disabled {
		inLAN("lan.dhcp.start", d.Start)
		inLAN("lan.dhcp.end", d.End)
		if s, e := netip.MustParseAddr(orAddr(d.Start)), netip.MustParseAddr(orAddr(d.End)); e.Less(s) {
			v.errorf("lan.dhcp.end", "the pool ends before it starts")
		}
	}
	for i, h := range g.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if !hostnameRE.MatchString(h.Name) {
			v.errorf(p+".name", "invalid host name %q", h.Name)
		}
		inLAN(p+".address", h.Address)
		if h.MAC != "" {
			if _, err := net.ParseMAC(h.MAC); err != nil {
				v.errorf(p+".mac", "invalid MAC address %q", h.MAC)
			}
		}
	}
	for i, u := range g.Upstream {
		if _, err := netip.ParseAddr(u); err != nil {
			v.errorf(fmt.Sprintf("upstream[%d]", i), "invalid DNS server address %q", u)
		}
	}
	for i, r := range g.Allow {
		p := fmt.Sprintf("allow[%d]", i)
		v.port(p+".port", r.Port)
		if r.Proto != "" && r.Proto != "tcp" && r.Proto != "udp" {
			v.errorf(p+".proto", "unknown protocol %q (want tcp or udp)", r.Proto)
		}
		if r.From != "" && r.From != "lan" && r.From != "wan" && r.From != "any" {
			v.errorf(p+".from", "unknown source %q (want lan, wan or any)", r.From)
		}
	}
}

// probeIface is where the host's probes arrive: kiln test forwards its ports,
// SSH included, to the VM's first interface, which kiln images name eth0.
const probeIface = "eth0"

// admits reports whether the firewall lets a TCP connection to port in
// through iface.
func (g *Gateway) admits(iface string, port int) bool {
	for _, r := range g.Allow {
		from := map[string]string{"lan": g.LAN.Interface, "wan": g.WAN}[r.From] // "" for any
		if r.Port == port && or(r.Proto, "tcp") == "tcp" && (from == "" || from == iface) {
			return true
		}
	}
	return false
}

// side names the allow source for iface: wan, lan or any.
func (g *Gateway) side(iface string) string {
	switch iface {
	case g.WAN:
		return "wan"
	case g.LAN.Interface:
		return "lan"
	}
	return "any"
}

// probeFrom keeps a host-side check that the firewall would drop inside the
// guest, where loopback is always allowed.
func (g *Gateway) probeFrom(c Check) Check {
	switch {
	case c.HTTP != nil && !g.admits(probeIface, c.HTTP.Port):
		return guestHTTPCheck(c.Name, "", c.HTTP.Port, c.HTTP.Path, c.HTTP.Status)
	case c.TCP != nil && !g.admits(probeIface, c.TCP.Port):
		return guestTCPCheck(c.Name, "", c.TCP.Port)
	}
	return c
}

// warnProbes warns when the firewall keeps kiln test out: the recipe's own
// host-side checks on ports it drops, and SSH, which kiln test logs in with.
// (Role checks move inside the guest on their own; see probeFrom.)
func (g *Gateway) warnProbes(v *validator) {
	if !g.admits(probeIface, 22) {
		v.warnf("allow", "TCP port 22 is not open on %s, where kiln test logs in over SSH to wait for cloud-init and run command checks; add {port: 22, from: %s}",
			probeIface, g.side(probeIface))
	}
	root := v.sub("")
	for i, c := range v.r.Checks {
		p, port := fmt.Sprintf("checks[%d].http.port", i), 0
		switch {
		case c.HTTP != nil:
			port = c.HTTP.Port
		case c.TCP != nil:
			p, port = fmt.Sprintf("checks[%d].tcp.port", i), c.TCP.Port
		default:
			continue
		}
		if !g.admits(probeIface, port) {
			root.warnf(p, "the network role's firewall drops TCP port %d on %s, where kiln test probes from the host; open it (allow: [{port: %d, from: %s}]) "+
				"or check inside the guest with a command check", port, probeIface, port, g.side(probeIface))
		}
	}
}

// orAddr keeps validation going on addresses already reported as bad.
func orAddr(a string) string {
	if _, err := netip.ParseAddr(a); err != nil {
		return "0.0.0.0"
	}
	return a
}

func (g *Gateway) contribute(c *contribution) error {
	prefix := netip.MustParsePrefix(g.LAN.Address)
	gw := prefix.Addr().String()
	type rule struct {
		Port         int
		Proto, Iface string
	}
	var allow []rule
	for _, r := range g.Allow {
		iface := map[string]string{"lan": g.LAN.Interface, "wan": g.WAN}[r.From]
		allow = append(allow, rule{Port: r.Port, Proto: or(r.Proto, "tcp"), Iface: iface})
	}
	nft, err := render("nftables.conf", map[string]any{"WAN": g.WAN, "LAN": g.LAN.Interface, "Allow": allow, "NAT": g.NAT, "Forward": g.Forward})
	if err != nil {
		return err
	}
	var dhcp any
	if d := g.pool(prefix); !d.Disabled {
		dhcp = map[string]string{"Start": d.Start, "End": d.End, "LeaseTime": leaseTime(d.LeaseTime)}
	}
	dns, err := render("dnsmasq.conf", map[string]any{"LAN": g.LAN.Interface, "Domain": g.LAN.Domain, "Gateway": gw,
		"Upstream": g.Upstream, "DHCP": dhcp, "Hosts": g.Hosts})
	if err != nil {
		return err
	}
	c.packages("dnsmasq", "nftables")
	c.file("/etc/nftables.conf", 0o755, nft)
	c.file("/etc/dnsmasq.d/kiln.conf", 0o644, dns)
	c.file(dnsmasqDropIn, 0o644, dnsmasqEnvironment)
	if g.Forward {
		c.file("/etc/sysctl.d/90-kiln-forward.conf", 0o644, "# Written by kiln (role network)\nnet.ipv4.ip_forward = 1\n")
	}
	c.unit("nftables.service", "", true)
	c.unit("dnsmasq.service", "", true)

	// The LAN address is per network, so it goes in the instance's network-config.
	t := true
	net := &Network{Ethernets: map[string]Ethernet{
		g.WAN:           {DHCP4: &t},
		g.LAN.Interface: {Addresses: []string{g.LAN.Address}},
	}}
	c.plan.Boot.Network = mergeNetwork(c.plan.Boot.Network, net)

	c.check(Check{Name: "firewall ruleset valid", Command: &CommandCheck{Run: Command{Argv: []string{"nft", "-c", "-f", "/etc/nftables.conf"}}}})
	c.check(Check{Name: "dnsmasq running", Command: &CommandCheck{Run: Command{Argv: []string{"systemctl", "is-active", "dnsmasq"}}}})
	if g.Forward {
		c.check(Check{Name: "forwarding on", Command: &CommandCheck{Run: Command{Argv: []string{"sysctl", "-n", "net.ipv4.ip_forward"}}, Contains: "1"}})
	}
	if g.NAT {
		c.check(Check{Name: "nat on", Command: &CommandCheck{Run: Command{Argv: []string{"nft", "list", "table", "ip", "kiln_nat"}}}})
	}
	return nil
}

// dnsmasqDropIn keeps dnsmasq away from resolvconf. Debian's unit starts
// dnsmasq through a helper that, wherever /sbin/resolvconf exists (on kiln
// images it is systemd-resolved's resolvectl), reads upstream servers from
// /run/dnsmasq/resolv.conf, which only the resolvconf package writes, and
// registers 127.0.0.1 as the system's resolver, which resolvectl refuses
// for lo. So without this the LAN gets no upstream DNS at all, and every
// start runs a failing resolvectl. With it dnsmasq reads /etc/resolv.conf
// (systemd-resolved's stub, which follows the WAN's resolvers) and the
// gateway itself keeps resolving through systemd-resolved.
const dnsmasqDropIn = "/etc/systemd/system/dnsmasq.service.d/40-kiln-network.conf"

const dnsmasqEnvironment = `# Written by kiln (role network). Edit the recipe, not this file.
# dnsmasq serves the LAN and forwards to /etc/resolv.conf (systemd-resolved's
# stub); it is not the gateway's own resolver, so resolvconf is left alone.
[Service]
Environment=IGNORE_RESOLVCONF=yes DNSMASQ_EXCEPT=lo
`

// pool is the DHCP pool with defaults filled: .100 to .200 of a /24 or
// larger subnet, the upper half of smaller ones.
func (g *Gateway) pool(prefix netip.Prefix) GatewayRange {
	r := g.LAN.DHCP
	def := defaultPool(prefix)
	if r.Start == "" {
		r.Start = def.Start
	}
	if r.End == "" {
		r.End = def.End
	}
	return r
}

func defaultPool(prefix netip.Prefix) GatewayRange {
	base := prefix.Masked().Addr().As4()
	size := 1 << (32 - prefix.Bits())
	lo, hi := 100, 200
	if size < 256 {
		lo, hi = size/2, size-2
	}
	at := func(off int) string {
		n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		n += uint32(off)
		return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
	}
	return GatewayRange{Start: at(lo), End: at(hi)}
}

func leaseTime(d Duration) string {
	if d == 0 {
		return "12h"
	}
	return fmt.Sprintf("%ds", int64(d.D().Seconds()))
}

// mergeNetwork lays b's interfaces over a's.
func mergeNetwork(a, b *Network) *Network {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := &Network{Ethernets: map[string]Ethernet{}}
	for k, e := range a.Ethernets {
		out.Ethernets[k] = e
	}
	for k, e := range b.Ethernets {
		out.Ethernets[k] = e
	}
	return out
}
