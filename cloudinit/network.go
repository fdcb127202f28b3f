package cloudinit

import "fmt"

// Network is a network-config version 2 document (the netplan-like format
// cloud-init renders to the guest's own network stack).
type Network struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]Ethernet `yaml:"ethernets,omitempty"`
}

// Ethernet configures one physical interface, selected by its map key or by
// Match.
type Ethernet struct {
	Match       *Match       `yaml:"match,omitempty"`
	SetName     string       `yaml:"set-name,omitempty"`
	DHCP4       *bool        `yaml:"dhcp4,omitempty"`
	DHCP6       *bool        `yaml:"dhcp6,omitempty"`
	Addresses   []string     `yaml:"addresses,omitempty"`
	Routes      []Route      `yaml:"routes,omitempty"`
	Nameservers *Nameservers `yaml:"nameservers,omitempty"`
	MTU         int          `yaml:"mtu,omitempty"`
}

// Match selects interfaces by name (globs allowed), MAC address or driver.
type Match struct {
	Name       string `yaml:"name,omitempty"`
	MACAddress string `yaml:"macaddress,omitempty"`
	Driver     string `yaml:"driver,omitempty"`
}

// Route is a static route.
type Route struct {
	To  string `yaml:"to"`
	Via string `yaml:"via"`
}

// Nameservers are static DNS settings.
type Nameservers struct {
	Addresses []string `yaml:"addresses,omitempty"`
	Search    []string `yaml:"search,omitempty"`
}

// Render returns the network-config bytes.
func (n Network) Render() ([]byte, error) {
	if n.Version != 2 {
		return nil, fmt.Errorf("cloudinit: network-config version %d is not supported (want 2)", n.Version)
	}
	return marshal(n)
}
