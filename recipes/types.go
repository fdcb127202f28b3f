package recipes

// APIVersion is the only recipe format version this kiln reads.
const APIVersion = "kiln/v1"

// Recipe describes what a server is for: the base it starts from, the roles
// it plays, what is baked into its image, what each instance gets at first
// boot, how to check it works, and the disk it ships as.
type Recipe struct {
	APIVersion  string  `yaml:"apiVersion" doc:"recipe format version; kiln/v1"`
	Kind        string  `yaml:"kind" doc:"always Recipe"`
	Name        string  `yaml:"name" doc:"image name: lower-case letters, digits and dashes"`
	Description string  `yaml:"description" doc:"one line shown in listings"`
	Extends     string  `yaml:"extends" doc:"path of a recipe this one builds on (relative to this file)"`
	Base        string  `yaml:"base" doc:"debian:trixie or debian:bookworm (built from packages; debian:stable and debian:oldstable follow the mirror), ./file.qcow2, https://example.com/image.qcow2#sha256=..., or oci://ref"`
	Roles       []Role  `yaml:"roles" doc:"built-in roles this server plays; see kiln roles"`
	Bake        Bake    `yaml:"bake" doc:"baked into the image once, at build time"`
	Boot        Boot    `yaml:"boot" doc:"applied per instance at first boot, from the seed"`
	Checks      []Check `yaml:"checks" doc:"probes kiln test runs (and later fleet health checks)"`
	Disk        Disk    `yaml:"disk" doc:"size, format and firmware of the image"`

	source   *source   // where it was loaded from; positions of every field
	warnings ErrorList // found by the last Validate
}

// Bake is what goes into the image itself. It may not hold secrets.
type Bake struct {
	Mode     string    `yaml:"mode" doc:"auto, offline (in the file tree, no VM) or vm (boot the base once with cloud-init)"`
	Mirror   string    `yaml:"mirror" doc:"Debian mirror URL for package bases; default: the build host's apt sources"`
	Packages []string  `yaml:"packages" doc:"distribution packages to install"`
	Files    []File    `yaml:"files" doc:"files to write"`
	Users    []User    `yaml:"users" doc:"users to create (password hashes are per instance: give them under boot.users)"`
	Units    []Unit    `yaml:"units" doc:"systemd units to write and/or enable"`
	Commands []Command `yaml:"commands" doc:"commands run last, as root, in the image"`
}

// Boot is what each instance gets from its seed at first boot.
type Boot struct {
	Hostname string    `yaml:"hostname" doc:"hostname pattern; {recipe}, {instance} and {index} are replaced"`
	Timezone string    `yaml:"timezone" doc:"IANA time zone, e.g. Europe/Berlin"`
	Users    []User    `yaml:"users" doc:"users with SSH keys and password hashes"`
	Files    []File    `yaml:"files" doc:"files to write; may hold secrets (env:NAME, file:PATH)"`
	Commands []Command `yaml:"commands" doc:"commands run once at the end of first boot"`
	Network  *Network  `yaml:"network" doc:"network-config v2 subset; without it, cloud-init configures DHCP on the first interface"`
}

// File is a file written into the image or by the seed. Exactly one of
// Content, Source and Secret gives its bytes.
type File struct {
	Path    string  `yaml:"path" doc:"absolute path in the guest"`
	Content *string `yaml:"content" doc:"literal content"`
	Source  string  `yaml:"source" doc:"file beside the recipe to copy (may not leave the recipe's directory)"`
	Secret  Secret  `yaml:"secret" doc:"env:NAME or file:PATH, resolved only when a seed is written (boot only)"`
	Mode    Mode    `yaml:"mode" doc:"octal permissions; default 0644, 0600 for secrets"`
	Owner   string  `yaml:"owner" doc:"user:group; default root:root"`
}

// User is a local account.
type User struct {
	Name              string   `yaml:"name" doc:"login name"`
	Groups            []string `yaml:"groups" doc:"supplementary groups"`
	Shell             string   `yaml:"shell" doc:"login shell; default /bin/bash"`
	Sudo              bool     `yaml:"sudo" doc:"passwordless sudo"`
	System            bool     `yaml:"system" doc:"a system account without a home in /home"`
	UID               int      `yaml:"uid" doc:"numeric user id"`
	SSHAuthorizedKeys []string `yaml:"sshAuthorizedKeys" doc:"OpenSSH public keys allowed to log in"`
	PasswordHash      Secret   `yaml:"passwordHash" doc:"crypt(3) hash (mkpasswd -m sha-512), or env:/file: holding one (boot only)"`
	Password          string   `yaml:"password" doc:"refused: plain-text passwords are never accepted; use passwordHash"`
}

// Unit is a systemd unit: written when Content is set, enabled unless
// Enable is false.
type Unit struct {
	Name    string `yaml:"name" doc:"unit name, e.g. myapp.service"`
	Content string `yaml:"content" doc:"unit file content; empty to only enable a unit a package ships"`
	Enable  *bool  `yaml:"enable" doc:"enable the unit; default true"`
}

// Check is one probe of a running instance. Exactly one of HTTP, TCP and
// Command is set.
type Check struct {
	Name    string        `yaml:"name" doc:"shown in reports; default derived from the probe"`
	HTTP    *HTTPCheck    `yaml:"http" doc:"HTTP GET through a forwarded port"`
	TCP     *TCPCheck     `yaml:"tcp" doc:"TCP connect through a forwarded port"`
	Command *CommandCheck `yaml:"command" doc:"command run in the guest"`
	Timeout Duration      `yaml:"timeout" doc:"how long to keep retrying before failing; default 2m"`

	// Origin is the recipe path that asked for the check: "checks[1]" or
	// a role's path, "roles[0].database".
	Origin string `yaml:"-"`
}

// HTTPCheck probes an HTTP endpoint in the guest.
type HTTPCheck struct {
	Port     int    `yaml:"port" doc:"guest TCP port"`
	Path     string `yaml:"path" doc:"request path; default /"`
	Status   int    `yaml:"status" doc:"expected status code; default 200"`
	Contains string `yaml:"contains" doc:"text the body must contain"`
}

// TCPCheck probes that a guest port accepts connections.
type TCPCheck struct {
	Port int `yaml:"port" doc:"guest TCP port"`
}

// CommandCheck runs a command in the guest.
type CommandCheck struct {
	Run      Command `yaml:"run" doc:"command to run"`
	ExitCode int     `yaml:"exitCode" doc:"expected exit code; default 0"`
	Contains string  `yaml:"contains" doc:"text the output must contain"`
}

// Disk describes the image file.
type Disk struct {
	Size        Size     `yaml:"size" doc:"virtual disk size; default 4GiB"`
	Format      string   `yaml:"format" doc:"qcow2 (default) or raw"`
	Compression string   `yaml:"compression" doc:"qcow2 cluster compression: zstd (default), zlib or none"`
	Firmware    []string `yaml:"firmware" doc:"firmware the image must boot under: bios, uefi (default both)"`
}

// Network is the subset of network-config v2 a recipe may set.
type Network struct {
	Ethernets map[string]Ethernet `yaml:"ethernets" doc:"interfaces by name (or an id with match)"`
}

// Ethernet configures one interface.
type Ethernet struct {
	Match       *Match       `yaml:"match" doc:"select by name glob, macaddress or driver"`
	DHCP4       *bool        `yaml:"dhcp4" doc:"use DHCPv4"`
	DHCP6       *bool        `yaml:"dhcp6" doc:"use DHCPv6"`
	Addresses   []string     `yaml:"addresses" doc:"static addresses in CIDR form"`
	Gateway4    string       `yaml:"gateway4" doc:"IPv4 default gateway"`
	Nameservers *Nameservers `yaml:"nameservers" doc:"static DNS servers"`
	MTU         int          `yaml:"mtu" doc:"MTU"`
}

// Match selects interfaces.
type Match struct {
	Name       string `yaml:"name" doc:"interface name, globs allowed (e*)"`
	MACAddress string `yaml:"macaddress" doc:"MAC address"`
	Driver     string `yaml:"driver" doc:"kernel driver, e.g. virtio_net"`
}

// Nameservers are static DNS settings.
type Nameservers struct {
	Addresses []string `yaml:"addresses" doc:"DNS server addresses"`
	Search    []string `yaml:"search" doc:"search domains"`
}
